"""``decode="batch"``: whole batches in one tensor, shared memory across DataLoader workers,
and `decode_images` (the GPU decoder's CPU fallback) equal to ``decode="image"``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers.data import packed_images
from helpers.samples import assert_exactly_once, read_span

from farfeed.errors import ConfigError
from farfeed.format import SampleIndex
from farfeed.loader import Batch, DataLoader, Dataset
from farfeed.loader.arena import POPULATE_STEP, ArenaError, Arenas
from farfeed.loader.images import decode_images
from farfeed.server import serve_in_thread


@pytest.fixture(scope="module")
def gateway(image_dataset: Path) -> Iterator[str]:
    with serve_in_thread(image_dataset.parent) as url:
        yield f"{url}/{image_dataset.name}"


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_hold_every_sample_once_byte_exact(
    image_dataset: Path, gateway: str, num_workers: int
) -> None:
    index = SampleIndex.load(image_dataset)
    ds = Dataset(gateway, decode="batch", batch_size=16, seed=4)
    loader = DataLoader(ds, batch_size=16, num_workers=num_workers)
    keys: list[str] = []
    sizes = []
    for batch in loader:
        assert isinstance(batch, Batch)
        sizes.append(len(batch))
        assert batch.data.dtype == torch.uint8 and batch.offsets[-1] == batch.nbytes
        if num_workers:  # read into the worker's arena: only (offset, length) crossed
            assert batch.lease is not None and batch.valid
        for k in range(len(batch)):
            i = int(batch.ids[k])
            assert batch.sample(k).numpy().tobytes() == read_span(image_dataset, index, i)
            raw = index.unpack(i, read_span(image_dataset, index, i))
            assert batch.member(k, "jpg").numpy().tobytes() == raw["jpg"]
            assert int(batch.labels[k]) == int(index.label[i])
            assert batch.keys[k] == raw["__key__"]
        keys += batch.keys
    assert_exactly_once(keys, image_dataset)
    assert sizes[:-1] == [16] * (len(sizes) - 1)  # whole batches; the last one may be short
    assert ds.stats()["samples"] == 120
    assert loader.state_dict()["consumed"] == 120


def test_arena_regions_are_reused_only_after_release_and_stale_batches_refuse(
    image_dataset: Path, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = SampleIndex.load(image_dataset)
    ds = Dataset(gateway, decode="batch", batch_size=8, seed=2)
    # an arena of ~4 requests of one batch each (~16 KiB): reused many times
    monkeypatch.setattr("farfeed.loader.dataloader.arena_capacity", lambda *a, **k: 4 * 8 * 2300)
    loader = DataLoader(ds, batch_size=8, num_workers=1, keep_batches=1)
    it = iter(loader)
    first = next(it)
    kept = first.clone()
    assert first.lease is not None and first.valid
    seen = list(first.keys)
    for batch in it:  # a small arena: its regions are reused many times
        assert batch.valid
        for k in range(len(batch)):  # every batch intact although regions are reused
            i = int(batch.ids[k])
            assert batch.sample(k).numpy().tobytes() == read_span(image_dataset, index, i)
        seen += batch.keys
    assert_exactly_once(seen, image_dataset)
    assert not first.valid  # released once a newer batch was taken, then overwritten
    with pytest.raises(ArenaError, match="clone"):
        first.member(0, "jpg")
    assert kept.lease is None and kept.valid
    for k in range(len(kept)):
        assert kept.sample(k).numpy().tobytes() == read_span(image_dataset, index, int(kept.ids[k]))


def _resident_kib(address: int) -> int:
    """Rss of this process's mapping that starts at ``address`` (/proc/self/smaps)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for k, line in enumerate(lines):
        if line[:1] not in "0123456789abcdef" or int(line.split("-", 1)[0], 16) != address:
            continue
        for field in lines[k + 1 :]:
            if field.startswith("Rss:"):
                return int(field.split()[1])
    raise AssertionError(f"no mapping starts at {address:#x}")


def test_a_writer_maps_its_arena_pages_ahead_in_one_call() -> None:
    arenas = Arenas(num_workers=1, capacity=4 * POPULATE_STEP)
    base = arenas.tensor(0).numpy().ctypes.data
    assert _resident_kib(base) == 0  # nothing touched yet
    writer = arenas.writer(0)
    offset, view = writer.reserve(1000, last_seq=0) or (None, None)
    assert offset == 0 and view is not None and len(view) == 1000
    assert _resident_kib(base) == POPULATE_STEP // 1024  # mapped, though nothing was written
    writer.reserve(POPULATE_STEP, last_seq=1)  # ends past the first step: one more
    assert _resident_kib(base) == 2 * POPULATE_STEP // 1024
    view[:] = b"x" * 1000  # the pages are the arena's: writes land in its tensor
    assert arenas.tensor(0)[:1000].numpy().tobytes() == b"x" * 1000


def test_in_process_batches_reuse_the_arena_after_keep_batches(image_dataset: Path, gateway: str) -> None:
    index = SampleIndex.load(image_dataset)
    ds = Dataset(gateway, decode="batch", batch_size=8, seed=5)
    batches = []
    for batch in ds:
        assert batch.lease is not None
        for k in range(len(batch)):
            i = int(batch.ids[k])
            assert batch.sample(k).numpy().tobytes() == read_span(image_dataset, index, i)
        if batches:
            assert batches[-1].valid  # the previous batch is still held (keep_batches=2)
        if len(batches) >= 2:
            assert not batches[-2].valid  # two newer ones taken: released
        batches.append(batch)
    assert_exactly_once([k for b in batches for k in b.keys], image_dataset)
    with pytest.raises(ArenaError, match="keep_batches"):
        batches[0].sample(0)
    import pickle

    again = pickle.loads(pickle.dumps(batches[-1]))  # in its own process: the bytes travel
    assert again.lease is None and torch.equal(again.data, batches[-1].data)


def test_in_process_epochs_reuse_one_arena_and_older_batches_turn_stale(
    image_dataset: Path, gateway: str
) -> None:
    """The next epoch fills the pages the last one faulted in; a batch kept from the last
    epoch is refused, not silently overwritten; two iterations at once get two arenas."""
    index = SampleIndex.load(image_dataset)

    def exact(batch: Batch) -> None:
        for k in range(len(batch)):
            i = int(batch.ids[k])
            assert batch.sample(k).numpy().tobytes() == read_span(image_dataset, index, i)

    ds = Dataset(gateway, decode="batch", batch_size=8, seed=6)
    first = list(ds)
    last = first[-1]
    assert last.lease is not None and last.valid  # the epoch ended: still held
    arena = last.lease.arenas
    ds.set_epoch(1)
    epoch = iter(ds)
    head = next(epoch)
    assert head.lease is not None and head.lease.arenas is arena  # the same mapping again
    assert not last.valid
    with pytest.raises(ArenaError, match="clone"):
        last.member(0, "jpg")
    exact(head)
    other = iter(ds)  # a second iteration while the first still fills the arena
    got = next(other)
    assert got.lease is not None and got.lease.arenas is not arena
    exact(got)
    rest = [head]
    for batch in epoch:
        exact(batch)
        rest.append(batch)
    assert_exactly_once([k for b in rest for k in b.keys], image_dataset)
    for batch in other:
        exact(batch)


def test_batches_without_arenas_from_a_plain_torch_dataloader(image_dataset: Path, gateway: str) -> None:
    """No farfeed DataLoader, so no arenas: batches arrive in fresh shared memory."""
    from torch.utils.data import DataLoader as TorchLoader

    ds = Dataset(gateway, decode="batch", batch_size=16, seed=3)
    keys = []
    for batch in TorchLoader(ds, batch_size=None, num_workers=2):
        assert batch.lease is None and batch.data.is_shared()
        keys += batch.keys
    assert_exactly_once(keys, image_dataset)


@pytest.mark.parametrize("num_workers", [1, 3])
def test_workers_send_several_batches_a_message_in_the_in_process_order(
    image_dataset: Path, gateway: str, num_workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small batches cross from a worker several to a message (each worker's first alone);
    the loop still gets them one by one, in the order an in-process loop gets, and a
    resume in the middle of a message goes on exactly."""
    order = [k for b in DataLoader(Dataset(gateway, decode="batch", batch_size=4, seed=7), batch_size=4) for k in b.keys]
    messages = 0
    torch_next = torch.utils.data.dataloader._MultiProcessingDataLoaderIter.__next__

    def counted(self: object) -> object:
        nonlocal messages
        item = torch_next(self)  # type: ignore[arg-type]
        messages += 1
        return item

    monkeypatch.setattr(torch.utils.data.dataloader._MultiProcessingDataLoaderIter, "__next__", counted)
    loader = DataLoader(Dataset(gateway, decode="batch", batch_size=4, seed=7), batch_size=4, num_workers=num_workers)
    batches = list(loader)
    assert all(isinstance(b, Batch) and len(b) == 4 for b in batches)  # 120 samples: 30 batches
    assert [k for b in batches for k in b.keys] == order
    assert num_workers < messages < len(batches) // 2  # a first message of one batch per worker, then bundles
    it = iter(loader)
    head = [k for _ in range(num_workers + 2) for k in next(it).keys]  # inside a worker's second message
    state = loader.state_dict()
    del it
    again = DataLoader(Dataset(gateway, decode="batch", batch_size=4, seed=7), batch_size=4, num_workers=num_workers)
    again.load_state_dict(state)
    assert head + [k for b in again for k in b.keys] == order


def test_a_loader_without_batch_size_takes_the_datasets(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset), decode="batch", batch_size=8, seed=1)
    assert [len(b) for b in DataLoader(ds, num_workers=1)] == [8] * 15  # not torch's 1
    assert DataLoader(ds, batch_size=4).dataset.batch_size == 4  # given: the loader's


def test_batch_resume_mid_epoch(image_dataset: Path) -> None:
    ds = Dataset(str(image_dataset), decode="batch", batch_size=8, seed=1)
    loader = DataLoader(ds, batch_size=8, num_workers=2)
    full = [k for b in loader for k in b.keys]
    it = iter(loader)
    head = [k for _ in range(5) for k in next(it).keys]
    state = loader.state_dict()
    del it
    again = DataLoader(Dataset(str(image_dataset), decode="batch", batch_size=8, seed=1), batch_size=8)
    again.load_state_dict(state)
    tail = [k for b in again for k in b.keys]
    assert head + tail == full


def test_missing_member_and_token_corpus_are_refused(image_dataset: Path, tmp_path: Path) -> None:
    batch = next(iter(Dataset(str(image_dataset), decode="batch", batch_size=4)))
    with pytest.raises(KeyError, match="no member 'png'"):
        batch.member(0, "png")
    from farfeed.format import make_sample_text, pack_text

    pack_text(make_sample_text(tmp_path / "txt", max_bytes=64 * 1024), tmp_path / "tok")
    with pytest.raises(ConfigError, match='use decode="tokens"'):
        Dataset(str(tmp_path / "tok"), decode="batch")


@pytest.mark.parametrize("train", [False, True])
def test_decode_images_on_the_cpu_matches_decode_image(tmp_path: Path, train: bool) -> None:
    dataset = packed_images(tmp_path / "ds", train=24, classes=3, seed=3, look="sample")
    ref = Dataset(str(dataset), decode="image", image_size=32, train=False, shuffle=False)
    expected = list(ref)
    got: list[tuple[torch.Tensor, int]] = []
    for batch in Dataset(str(dataset), decode="batch", batch_size=10, shuffle=False):
        images, labels = decode_images(batch, image_size=32, train=train)
        assert images.shape == (len(batch), 3, 32, 32) and images.dtype == torch.float32
        got += list(zip(images, labels.tolist(), strict=True))
    assert [label for _, label in got] == [label for _, label in expected]
    if not train:  # the same decoder (libjpeg-turbo) and the same geometry: the same tensors
        for (a, _), (b, _) in zip(got, expected, strict=True):
            assert torch.equal(a, b)
    else:  # random crops differ from the eval view, but the pixels are normalised alike
        assert abs(float(torch.stack([a for a, _ in got]).mean())) < 1.0


@pytest.mark.parametrize(
    "members",
    [
        [[0], [0], [0]],  # one member each, one extension: the shortcut
        [[1], [0], [1]],  # one member each, two extensions
        [[0, 1], [], [1]],  # two, none, one: the general path
        [[0, 0], [1], []],  # as many members as samples, but not one each
    ],
)
def test_member_tables_shortcut_equals_the_general_path(members: list[list[int]]) -> None:
    """Each sample's member table row, computed one by one, equals the vectorised one."""
    from types import SimpleNamespace

    import numpy as np

    from farfeed.loader.batch import _member_tables

    starts = np.cumsum([0] + [len(m) for m in members])
    exts = [e for m in members for e in m]
    index = SimpleNamespace(
        member_start=np.asarray(starts, dtype=np.int64),
        member_ext=np.asarray(exts, dtype=np.int64),
        member_offset=np.asarray([512 * (k + 1) for k in range(len(exts))], dtype=np.int64),
        member_size=np.asarray([10 + k for k in range(len(exts))], dtype=np.int64),
        extensions=["jpg", "cls"],
    )
    ids = np.arange(len(members))
    offsets = np.asarray([0, 5000, 9000, 20000], dtype=np.int64)
    tables = _member_tables(index, ids, offsets)
    for ext_id, ext in enumerate(index.extensions):
        want = [[-1, -1] for _ in members]
        for k, m in enumerate(members):
            for j, e in enumerate(m):  # the last member of an extension wins, as in the index
                if e == ext_id:
                    at = starts[k] + j
                    want[k] = [int(offsets[k] + index.member_offset[at]), int(index.member_size[at])]
        if any(row != [-1, -1] for row in want):
            assert tables[ext].tolist() == want
        else:
            assert ext not in tables
