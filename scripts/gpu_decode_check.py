"""Decode on the GPU: `decode="batch"` + `farfeed.loader.images.decode_images` vs `decode="image"`.

    PYTHONPATH=src python scripts/gpu_decode_check.py --device cuda      # on a GPU node
    PYTHONPATH=src python scripts/gpu_decode_check.py --device cpu       # the fallback, here

Makes sample JPEGs (320 px, ~110 KB, as ImageNet's), packs them, serves them with a
gateway on loopback, then for each path reads one epoch through `farfeed.loader.DataLoader`
(4 workers) and reports images/s and the CPU-seconds per 1,000 images of this process
tree. On CUDA it also checks that the GPU's eval crops equal the CPU's within the JPEG
decoders' rounding (nvJPEG and libjpeg-turbo may differ by a few levels).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from farfeed.format import make_sample_images, pack_images
from farfeed.loader import DataLoader, Dataset
from farfeed.loader.images import decode_images
from farfeed.server import serve_in_thread


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="farfeed-gpu-decode-"))
    src = make_sample_images(work / "img", count=args.images, seed=0, classes=10, val_fraction=0.0)
    pack_images(src, work / "root" / "ds")
    device = torch.device(args.device)
    with serve_in_thread(work / "root") as url:
        for path in ("image", "batch"):
            ds = Dataset(f"{url}/ds", decode=path, image_size=224, train=True, batch_size=args.batch)
            loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers)
            c0, t0, n = cpu_seconds(), time.perf_counter(), 0
            for item in loader:
                images, labels = decode_images(item, device=device) if path == "batch" else item
                images = images.to(device, non_blocking=True)
                n += len(labels)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt, dc = time.perf_counter() - t0, cpu_seconds() - c0
            print(f"decode={path:5s} on {'workers (CPU)' if path == 'image' else device}: "
                  f"{n / dt:7.0f} images/s, {dc / n * 1000:6.2f} CPU-s per 1,000 images")  # fmt: skip
        if device.type == "cuda":
            batch = next(iter(Dataset(f"{url}/ds", decode="batch", batch_size=16, shuffle=False)))
            gpu, _ = decode_images(batch, train=False, device=device)
            cpu, _ = decode_images(batch, train=False, device="cpu")
            diff = (gpu.cpu() - cpu).abs()
            print(f"eval crops, GPU vs CPU: max |diff| {diff.max():.3f}, mean {diff.mean():.4f} (normalised units)")
    print(f"work folder: {work} (delete it when done); pid {os.getpid()}")


if __name__ == "__main__":
    main()
