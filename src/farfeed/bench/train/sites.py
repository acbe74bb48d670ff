"""The two sites on one machine: the gateway over a storage root, and emulated links to it.

    with open_sites(root, links={"near": Link(), "remote": Link.from_preset("tokyo-fukuoka")}) as sites:
        sites.placement("remote", "sample-images")   # data via emulator -> gateway

``local`` reads the dataset folder directly (no gateway, no emulator); every other
placement goes through `farfeed serve` (its own process) and a `farfeed wan` emulator
(its own process) with that placement's link, so ``near`` (0 ms) and ``remote`` share
the whole path except the distance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farfeed.bench.train.loop import Placement
from farfeed.errors import ConfigError

LOCAL = "local"
#: The placement through the emulator at 0 ms, and the one across the distance.
NEAR = "near"
REMOTE = "remote"


@dataclass
class Sites:
    """A running gateway over ``root`` and one emulator per named link."""

    root: Path
    gateway: Any
    wans: dict[str, Any] = field(default_factory=dict)

    def placement(self, name: str, dataset: str, *, run: str | None = None) -> Placement:
        """Where placement ``name`` reads ``dataset`` (a folder under root) and checkpoints ``run``."""
        if not (self.root / dataset / "dataset.json").is_file():
            raise ConfigError(f"no dataset {dataset!r} under the storage root {str(self.root)!r}")
        ckpt_name = f"{run}-{name}" if run else None
        if name == LOCAL:
            ckpt = str(self.root / "checkpoints" / ckpt_name) if ckpt_name else None
            return Placement(name, str(self.root / dataset), ckpt, root_url=str(self.root))
        if name not in self.wans:
            raise ConfigError(f"unknown placement {name!r}; known: {[LOCAL, *self.wans]}")
        base = self.wans[name].url_for(self.gateway.url)
        ckpt = f"{base}/checkpoints/{ckpt_name}" if ckpt_name else None
        return Placement(name, f"{base}/{dataset}", ckpt, root_url=base)


@contextlib.contextmanager
def open_sites(root: Path, *, links: Mapping[str, Any]) -> Iterator[Sites]:
    """Start the gateway over ``root`` and one `WanProcess` per link; stop them all after."""
    from farfeed.server import GatewayProcess
    from farfeed.wan import WanProcess, parse_address

    if LOCAL in links:
        raise ConfigError(f"{LOCAL!r} is the placement without a link; rename that link")
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"storage root {str(root)!r} is not a folder")
    (root / "checkpoints").mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        gateway = GatewayProcess.start(root, host="127.0.0.1", port=0)
        stack.callback(gateway.stop)
        upstream = parse_address(gateway.url.split("://", 1)[1].rstrip("/"))
        sites = Sites(root=root, gateway=gateway)
        for name, link in links.items():
            wan = WanProcess.start(upstream=upstream, link=link)
            stack.callback(wan.stop)
            sites.wans[name] = wan
        yield sites
