"""`python -m farfeed.wan --listen H:P --upstream H:P --link-json JSON`: the child behind `WanProcess`.

Obeys JSON commands on stdin (see `farfeed.wan.serve`) and exits when stdin closes.
Humans want `farfeed wan` instead: same engine, presets and knobs.
"""

from __future__ import annotations

import argparse
import json
import sys

from farfeed.errors import FarfeedError
from farfeed.wan.address import parse_address
from farfeed.wan.link import Link
from farfeed.wan.serve import run_wan


def main(argv: list[str] | None = None) -> None:
    """Parse the child's arguments and serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m farfeed.wan", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to accept on")
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--link-json", default="{}", help="Link fields as JSON (seconds, bytes)")
    parser.add_argument("--stats-every", type=float, default=0.0, help="seconds; 0: off")
    args = parser.parse_args(argv)
    try:
        link = Link.from_dict(json.loads(args.link_json))
        run_wan(
            upstream=parse_address(args.upstream, what="--upstream"),
            listen=parse_address(args.listen, what="--listen"),
            link=link,
            stats_every=args.stats_every,
            control=True,
        )
    except (FarfeedError, json.JSONDecodeError) as exc:
        print(f"farfeed wan: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
