"""CLI: `farfeed sample-data`, `farfeed pack`, `farfeed index` (storage site: make and pack datasets).

farfeed sample-data images ./imgs --count 2000 && farfeed pack images ./imgs ./ds
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from farfeed.format.meta import DATASET_JSON

sample_app = typer.Typer(
    name="sample-data",
    help="Make sample data to try farfeed with: ImageNet-like JPEGs, or a text corpus (nothing downloaded).",
    no_args_is_help=True,
)
pack_app = typer.Typer(
    name="pack",
    help=(
        "Pack source files into a farfeed dataset: POSIX tar shards (WebDataset layout) + "
        f"index.npz + {DATASET_JSON}, or a token corpus. Spec: src/farfeed/format/README.md."
    ),
    no_args_is_help=True,
)


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class Tokenizer(str, Enum):
    byte = "byte"
    bpe = "bpe"


def _done(line: str) -> None:
    typer.secho(line, fg=typer.colors.GREEN)


@sample_app.command("images")
def sample_images(
    out: Path = typer.Argument(
        ..., help="Folder to write OUT/train/<class>/*.jpg and OUT/val/<class>/*.jpg into."
    ),
    count: int = typer.Option(
        2000,
        "--count",
        "-n",
        help="Number of TRAIN images (val adds --val-fraction more). Each is ~110 KB.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same bytes."),
    classes: int = typer.Option(
        10, "--classes", help="Number of classes (each a colour + shape), 1-1000."
    ),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", help="Val images as a fraction of --count."
    ),
) -> None:
    """Make an ImageNet-layout folder of synthetic JPEGs (~110 KB each, learnable at 32-64 px)."""
    import time

    from farfeed.format.sample_images import make_sample_images

    started = time.perf_counter()
    path = make_sample_images(
        out, count=count, seed=seed, classes=classes, val_fraction=val_fraction, progress=True
    )
    files = [p.stat().st_size for p in path.rglob("*.jpg")]
    seconds = time.perf_counter() - started
    _done(f"made {len(files):,} images, {sum(files) / 1e6:,.1f} MB in {seconds:.1f} s -> {path}")


@sample_app.command("text")
def sample_text(
    out: Path = typer.Argument(..., help="Folder to write the *.txt corpus files into."),
    max_mb: float = typer.Option(32.0, "--max-mb", help="Corpus size cap in MiB (2**20 bytes)."),
) -> None:
    """Make a text corpus from Python's own standard library sources and pydoc topics."""
    from farfeed.errors import ConfigError
    from farfeed.format.sample_text import make_sample_text

    if max_mb <= 0:
        raise ConfigError(f"--max-mb must be positive, got {max_mb!r}")
    path = make_sample_text(out, max_bytes=int(max_mb * 2**20), progress=True)
    files = sorted(path.glob("*.txt"))
    _done(
        f"wrote {len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:,.1f} MB -> {path}"
    )


@pack_app.command("images")
def pack_images(
    src: Path = typer.Argument(
        ...,
        help="ImageNet-layout folder: SRC/train/<class>/*.jpg (+ SRC/val/<class>/...) or SRC/<class>/*.jpg.",
    ),
    out: Path = typer.Argument(
        ..., help="New dataset folder (written beside, then renamed into place)."
    ),
    shard_size: str = typer.Option(
        "256MiB",
        "--shard-size",
        help="Target shard size: bytes, or with a unit (64MB = 64e6, 1GiB = 2**30).",
    ),
    on_error: OnError = typer.Option(
        OnError.fail,
        "--on-error",
        help="A file that is not a readable image: 'fail' stops with its name, 'skip' leaves it out and reports it.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help=f"Replace OUT if it already holds a dataset ({DATASET_JSON})."
    ),
    shuffle: bool = typer.Option(
        False,
        "--shuffle",
        help="Write the samples in a random order (seeded by --seed) instead of sorted: neighbours in a shard are then unrelated, which a loader reading runs of neighbours needs (Dataset(shuffle_block=N)).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the --shuffle order."),
) -> None:
    """Pack an image folder into tar shards + index (bytes untouched, labels = sorted class folders)."""
    from farfeed.format.pack_images import pack_images as run

    report = run(
        src,
        out,
        shard_size=shard_size,
        on_error=on_error.value,
        overwrite=overwrite,
        shuffle_seed=seed if shuffle else None,
        progress=True,
    )
    for path, reason in report.skipped[:20]:
        typer.secho(f"skipped {path}: {reason}", err=True, fg=typer.colors.YELLOW)
    _done(report.summary())


@pack_app.command("text")
def pack_text(
    src: Path = typer.Argument(
        ...,
        help="A text file, or a folder of *.txt (documents split by a line holding only \\x1e) and *.jsonl ({'text': ...} per line).",
    ),
    out: Path = typer.Argument(..., help="New token-corpus folder."),
    tokenizer: Tokenizer = typer.Option(
        Tokenizer.byte,
        "--tokenizer",
        help="'byte': token = byte (vocab 257, EOS 256); 'bpe': ByteLevel BPE trained here on SRC.",
    ),
    vocab_size: int = typer.Option(
        8192, "--vocab-size", help="BPE vocabulary size (tokens, incl. EOS); ignored for 'byte'."
    ),
    chunk_tokens: int = typer.Option(
        2**19, "--chunk-tokens", help="Tokens per checksummed chunk (default 524288)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help=f"Replace OUT if it already holds a dataset ({DATASET_JSON})."
    ),
) -> None:
    """Tokenize a text corpus into flat token files + index (last ~2 % of documents = split 'val')."""
    from farfeed.format.pack_text import pack_text as run

    report = run(
        src, out, tokenizer=tokenizer.value, vocab_size=vocab_size, chunk_tokens=chunk_tokens,
        overwrite=overwrite, progress=True,
    )  # fmt: skip
    _done(report.summary(unit="documents"))


def index(
    directory: Path = typer.Argument(
        ...,
        help="Folder of existing WebDataset *.tar shards (split from the name prefix: train-/val-/test-).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help=f"Re-index a folder that already has {DATASET_JSON}."
    ),
    classes: Path | None = typer.Option(
        None,
        "--classes",
        help="Text file of class names, one per line, label = line number from 0 "
        "(default: 0 .. K-1 when the samples carry integer cls labels).",
    ),
) -> None:
    """Index existing WebDataset shards in place: writes index.npz + dataset.json, never touches the shards.

    Samples with an integer cls/class/label member get that label, and dataset.json lists
    the classes (their names from --classes, else 0 .. K-1).
    """
    from farfeed.errors import ConfigError
    from farfeed.format.wds_index import index_webdataset

    names = None
    if classes is not None:
        try:
            names = [line.strip() for line in classes.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read --classes {str(classes)!r}: {exc}") from exc
    report = index_webdataset(directory, overwrite=overwrite, progress=True, classes=names)
    _done(report.summary(verb="indexed"))


def register(app: typer.Typer) -> None:
    """Add `sample-data`, `pack` and `index` to the `farfeed` app."""
    app.add_typer(sample_app, name="sample-data")
    app.add_typer(pack_app, name="pack")
    app.command("index")(index)
