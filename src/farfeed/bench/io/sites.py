"""The storage sites `farfeed bench io` compares, each behind the same emulated link.

- ``gateway``: `farfeed serve` over the dataset's folder (sendfile from local disk);
- ``gateway-s3``: `farfeed serve s3://...` in front of an S3 store (``rclone serve s3``
  over the same folder), reading it in blocks through its cache; restarted before each
  trial, so every trial starts with a cold cache (a first epoch);
- ``s3``: the loader reading the S3 store directly (range GETs, no gateway);
- ``s3-blocks``: the same with ``Dataset(shuffle_block=S3_BLOCK)``: runs of neighbours
  shuffled instead of single samples, one range GET per run.

A `CountingProxy` sits in front of the S3 store, so both S3 paths report store requests
per 1,000 samples counted the same way, outside farfeed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.errors import ConfigError

PATHS = ("gateway", "gateway-s3", "s3", "s3-blocks")
#: ``shuffle_block`` of the ``s3-blocks`` path.
S3_BLOCK = 16
#: How each path is named in the table.
LABELS = {"gateway": "gateway (disk)", "gateway-s3": "gateway (S3)", "s3": "S3 direct",
          "s3-blocks": f"S3 direct, shuffle_block={S3_BLOCK}"}  # fmt: skip


@dataclass
class Upstream:
    """What the emulated link fronts: a base ``url`` and the ``pid`` whose CPU is the
    storage site's (None: nothing farfeed runs there)."""

    url: str
    pid: int | None


@dataclass
class Site:
    """One storage path, ready for trials."""

    path: str
    upstream: Upstream
    #: base URL through the link -> (dataset URL, store_options for the trial's Dataset)
    dataset: Callable[[str], tuple[str, dict[str, Any] | None]]
    #: store requests so far (None: not an S3 path)
    store_requests: Callable[[], int | None] = field(default=lambda: None)
    #: called before each trial (a cold cache for the gateway in front of S3)
    fresh: Callable[[], None] = field(default=lambda: None)
    #: the trial Dataset's ``shuffle_block``
    shuffle_block: int = 1


def check_paths(paths: tuple[str, ...]) -> None:
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        raise ConfigError(f"--paths takes {', '.join(PATHS)}; got {list(paths)!r}")


@contextmanager
def storage_sites(
    paths: tuple[str, ...], root: Path, dataset: str, *, cache_mib: int, block_mib: float
) -> Iterator[dict[str, Site]]:
    """Start what ``paths`` need over ``root`` (which holds the folder ``dataset``); stop it all at exit."""
    from farfeed.bench.io.counting import CountingProxy
    from farfeed.server.process import GatewayProcess
    from farfeed.store.testing import serve_s3

    check_paths(paths)
    sites: dict[str, Site] = {}
    with ExitStack() as stack:
        if "gateway" in paths:
            gw = stack.enter_context(GatewayProcess.start(root))
            sites["gateway"] = Site(
                "gateway", Upstream(gw.url, gw.pid), lambda base: (f"{base}/{dataset}", None)
            )
        if {"gateway-s3", "s3", "s3-blocks"} & set(paths):
            s3 = stack.enter_context(serve_s3(root.parent))  # the folder ``root`` is the bucket
            host, port = s3.endpoint_url.split("//", 1)[1].rsplit(":", 1)
            proxy = stack.enter_context(CountingProxy((host, int(port))))
            bucket = f"s3://{root.name}"
            if "gateway-s3" in paths:
                flags = ["--s3-endpoint-url", proxy.url, "--cache-mib", str(cache_mib)]
                flags += ["--block-mib", f"{block_mib:g}"]
                keys = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
                gws3 = stack.enter_context(GatewayProcess.start(bucket, options=flags, env=keys))
                upstream = Upstream(gws3.url, gws3.pid)

                def restart(gw: Any = gws3, up: Upstream = upstream) -> None:
                    gw.restart()
                    up.pid = gw.pid

                sites["gateway-s3"] = Site(
                    "gateway-s3", upstream, lambda base: (f"{base}/{dataset}", None),
                    store_requests=lambda: proxy.total, fresh=restart,
                )  # fmt: skip

            def direct(base: str) -> tuple[str, dict[str, Any]]:
                return f"{bucket}/{dataset}", {**s3.store_options(), "s3_endpoint_url": base}

            for name, block in (("s3", 1), ("s3-blocks", S3_BLOCK)):
                if name in paths:
                    sites[name] = Site(
                        name, Upstream(proxy.url, None), direct,
                        store_requests=lambda: proxy.total, shuffle_block=block,
                    )  # fmt: skip
        yield {p: sites[p] for p in paths}
