"""`farfeed bench io --paths gateway-s3,s3,s3-blocks`: the S3 storage paths serve the dataset, and
their store requests are counted outside farfeed (no trials: seconds)."""

from __future__ import annotations

from pathlib import Path

from helpers.data import fixed_size_dataset

from farfeed.bench.io.sites import storage_sites
from farfeed.store import open_store
from farfeed.transfer import run_sync


def test_the_s3_paths_serve_the_dataset_and_count_store_requests(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fixed_size_dataset(root / "io", samples=20, sample_bytes=1000)
    want = (root / "io" / "dataset.json").read_bytes()
    paths = ("gateway-s3", "s3", "s3-blocks")
    with storage_sites(paths, root, "io", cache_mib=8, block_mib=1) as sites:
        assert [s.shuffle_block for s in sites.values()] == [1, 1, 16]
        for name, site in sites.items():
            site.fresh()
            before = site.store_requests()
            url, options = site.dataset(site.upstream.url)

            async def read(url: str = url, options: dict | None = options) -> bytes:
                async with open_store(url, **(options or {})) as store:
                    return await store.read("dataset.json")

            assert run_sync(read) == want, name
            after = site.store_requests()
            assert before is not None and after is not None and after > before, name
