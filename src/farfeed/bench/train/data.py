"""The training job's side of the data path: `farfeed.Dataset` + `farfeed.loader.DataLoader`.

Every placement (a local folder, the gateway at 0 ms, the gateway across the emulated
link) goes through exactly these calls; only the URL differs. With ``record_keys`` each
batch also carries its samples' keys, so a test can check that ranks saw disjoint data.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from farfeed.bench.train.config import TrainConfig
from farfeed.bench.train.ranks import TrainRanks
from farfeed.bench.train.workloads import LlamaWorkload, ResNetWorkload, Workload
from farfeed.errors import FormatError

#: The loader's memory budget per rank when the config gives none (bytes).
DEFAULT_MEMORY_BUDGET = 256 * 2**20


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    """What a dataset says about itself in dataset.json (kind, classes, vocabulary)."""

    kind: str
    samples: int
    classes: int
    vocab_size: int


def read_facts(url: str, *, store_options: Mapping[str, Any] | None = None) -> DatasetFacts:
    """Read ``dataset.json`` at ``url`` (any store URL) once, before training starts."""
    from farfeed.format.meta import DATASET_JSON, DatasetMeta
    from farfeed.store import open_store
    from farfeed.transfer import run_sync

    async def fetch() -> bytes:
        async with open_store(url, **dict(store_options or {})) as store:
            return await store.read(DATASET_JSON)

    meta = DatasetMeta.from_json(run_sync(fetch))
    return DatasetFacts(
        kind=meta.kind,
        samples=meta.samples,
        classes=len(meta.classes),
        vocab_size=int(meta.raw.get("vocab_size", 0)),
    )


def make_workload(
    config: TrainConfig, facts: DatasetFacts, *, store_options: Mapping[str, Any] | None = None
) -> Workload:
    """The workload ``config`` names, sized by what the dataset holds."""
    want = "tokens" if config.workload == "llm" else "images"
    if facts.kind != want and not (want == "images" and facts.kind == "webdataset"):
        raise FormatError(
            f"workload {config.workload!r} needs a dataset of kind {want!r}, got {facts.kind!r}"
        )
    if config.workload == "resnet":
        return ResNetWorkload(
            classes=facts.classes,
            arch=config.arch,
            image_size=config.image_size,
            lr=config.learning_rate,
            amp=config.amp,
            channels_last=config.channels_last,
        )
    return LlamaWorkload(
        vocab_size=facts.vocab_size,
        size=config.model_size,
        seq_len=config.seq_len,
        lr=config.learning_rate,
        amp=config.amp,
        lora_base=config.lora_base,
        lora_rank=config.lora_rank,
        store_options=dict(store_options or {}),
    )


class KeyedDecode:
    """A picklable decode callable: the standard image/token decode plus the sample key."""

    def __init__(self, *, kind: str, image_size: int, train: bool) -> None:
        self.kind = kind
        self.image_size = image_size
        self.train = train
        self._transform: Callable[[Any], Any] | None = None

    def __call__(self, sample: dict[str, Any]) -> tuple[Any, Any, str]:
        from farfeed.loader.decode import decode_image_sample, image_pipeline

        if self._transform is None:
            self._transform = image_pipeline(self.image_size, train=self.train)
        image, label = decode_image_sample(sample, self._transform)
        return image, label, str(sample["__key__"])


def open_loader(
    url: str,
    config: TrainConfig,
    workload: Workload,
    world: TrainRanks,
    *,
    split: str = "train",
    train: bool = True,
    workers: int | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> Any:
    """A `farfeed.loader.DataLoader` over ``split`` of ``url`` for this rank."""
    import farfeed
    from farfeed.loader import DataLoader

    options = workload.dataset_options(train=train)
    if config.record_keys and options["decode"] == "image":
        options["decode"] = KeyedDecode(
            kind="image", image_size=options.pop("image_size"), train=options.pop("train")
        )
    dataset = farfeed.Dataset(
        url,
        split=split,
        seed=config.seed,
        shuffle=train,
        rank=world.rank,
        world_size=world.world_size,
        memory_budget=config.memory_budget or DEFAULT_MEMORY_BUDGET,
        token=(store_options or {}).get("token"),
        **options,
    )
    num_workers = config.workers if workers is None else workers
    pin = config.device == "cuda"
    return DataLoader(
        dataset, batch_size=config.per_rank_batch, num_workers=num_workers, pin_memory=pin
    )


def epochs(loader: Any) -> Generator[Any, None, None]:
    """Batches forever: the current (maybe resumed) epoch, then ``set_epoch`` +1 each time."""
    epoch = loader.dataset.epoch
    first = True
    while True:
        if not first:
            loader.dataset.set_epoch(epoch)
        first = False
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise FormatError(f"dataset {loader.dataset.url!r} gave this rank no batches")
        epoch += 1


def split_keys(batch: Any) -> tuple[Any, list[str]]:
    """(batch without keys, keys) for a keyed batch; (batch, []) otherwise."""
    if isinstance(batch, (list, tuple)) and len(batch) == 3:
        return (batch[0], batch[1]), [str(k) for k in batch[2]]
    return batch, []
