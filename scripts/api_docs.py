"""The Python API reference, HTML from the docstrings (pdoc), in one folder.

    make docs                                           # installs pdoc, writes build/api/
    .venv/bin/python scripts/api_docs.py build/api      # the same, pdoc already installed

Covers what a training script imports: `farfeed`, `farfeed.loader`, `farfeed.checkpoint`,
`farfeed.weights`, `farfeed.store` (with `farfeed.store.access`, the token and TLS rules)
and `farfeed.errors`. Their heavy names (torch, the
network backends) are imported lazily, on first use; this script uses each once first, so
pdoc finds them beside the rest. `tests/test_api_docs.py` keeps every public name and
parameter documented.
"""

from __future__ import annotations

import argparse
import importlib
import warnings
from pathlib import Path

MODULES = (
    "farfeed",
    "farfeed.loader",
    "farfeed.checkpoint",
    "farfeed.weights",
    "farfeed.store",
    "farfeed.store.access",
    "farfeed.errors",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("build/api"), help="output folder")
    args = parser.parse_args()

    import pdoc
    import pdoc.render

    # Stores have a method named `list`, so pdoc cannot evaluate their `list[...]` return
    # annotations in the class's namespace; it shows them as written, which is right.
    warnings.filterwarnings("ignore", message=r"Error parsing type annotation list\[")

    for name in MODULES:  # resolve the lazy exports, so they are module attributes
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            getattr(module, attr)
    pdoc.render.configure(docformat="markdown", search=False, show_source=True)
    pdoc.pdoc(*MODULES, output_directory=args.out)
    print(f"API reference: {args.out / 'index.html'}")


if __name__ == "__main__":
    main()
