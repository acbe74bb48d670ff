"""How much of the shuffle `Dataset(shuffle_block=N)` gives up, measured on the order alone.

    .venv/bin/python scripts/shuffle_quality.py --classes 1000 --per-class 1281 --batch 256

An ImageNet-sized split (``--classes`` x ``--per-class`` samples) in two storage orders:
packed sorted by class (``farfeed pack images``' default) and packed in random order
(``--shuffle``). For each ``shuffle_block`` it reports, over one epoch of rank 0 of 8:

- distinct classes per batch (an exact sample shuffle's figure is the yardstick);
- repeated batch-mates: of the pairs of samples that share a batch in epoch 1, the
  fraction that shared one in epoch 0 too (one rank: every batch of the job), against
  ~batch / samples (~0) for an exact shuffle.

No data is read: the figures come from `farfeed.loader.sampler.Sampler`'s order, which
is what the loader fetches.
"""

from __future__ import annotations

import argparse

import numpy as np

from farfeed.loader.sampler import Sampler
from farfeed.loader.world import World


def batches(order: np.ndarray, batch: int) -> np.ndarray:
    n = len(order) // batch * batch
    return order[:n].reshape(-1, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=1281)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--blocks", default="1,4,8,16,32,64")
    args = parser.parse_args()
    n = args.classes * args.per_class
    sorted_labels = np.repeat(np.arange(args.classes), args.per_class)
    random_labels = np.random.default_rng(0).permutation(sorted_labels)
    print(f"{n:,} samples, {args.classes} classes, batch {args.batch}, rank 0 of "
          f"{args.world_size}")  # fmt: skip
    print("| shuffle_block | classes/batch (packed sorted) | classes/batch (packed --shuffle) "
          "| repeated batch-mates |")  # fmt: skip
    print("|---|---|---|---|")
    world = World(0, args.world_size)
    for block in (int(b) for b in args.blocks.split(",")):
        s = Sampler(np.arange(n), seed=0, block=block)
        e0 = batches(s.rank_stream(0, world), args.batch)
        row = [f"{block}"]
        for labels in (sorted_labels, random_labels):
            row.append(f"{np.mean([len(np.unique(labels[b])) for b in e0]):.1f}")
        # repeated batch-mates: sample -> batch number in epoch 0, per batch of epoch 1
        e0 = batches(s.rank_stream(0, World(0, 1)), args.batch)
        e1 = batches(s.rank_stream(1, World(0, 1)), args.batch)
        where = np.full(n, -1)
        for k, b in enumerate(e0):
            where[b] = k
        pairs = repeated = 0
        for b in e1[:200]:
            _, counts = np.unique(where[b][where[b] >= 0], return_counts=True)
            repeated += int((counts * (counts - 1) // 2).sum())
            pairs += args.batch * (args.batch - 1) // 2
        row.append(f"{repeated / pairs:.3f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
