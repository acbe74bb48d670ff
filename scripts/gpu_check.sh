#!/usr/bin/env bash
# GPU check: `farfeed bench train` on CUDA, data local vs near (0 ms) vs remote (tokyo-fukuoka,
# 15 ms emulated), for ResNet-50 at 224 (bf16 autocast, channels_last) and a ~1B Llama.
# About 5 minutes on one H200 (sample data ~1 min, ResNet ~2 min, Llama ~2 min).
#
#   scripts/gpu_check.sh                  # results under ./gpu-out
#   OUT=/results scripts/gpu_check.sh     # JSON, report.md, plots and logs under $OUT
#   WHEELS=/wheels scripts/gpu_check.sh   # first `pip install --no-deps $WHEELS/*.whl`
#
# Needs torch (CUDA), torchvision, transformers, peft, aiohttp, numpy, pillow, and farfeed's
# small deps (xxhash typer rich tokenizers safetensors; matplotlib for the plots). Runs
# farfeed from this checkout (PYTHONPATH=src), nothing is installed unless WHEELS is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-$PWD/gpu-out}"
WORK="${WORK:-${TMPDIR:-/tmp}/farfeed-gpu-check}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT" "$WORK"

if [ -n "${WHEELS:-}" ]; then
    "$PY" -m pip install --no-deps -q "$WHEELS"/*.whl
fi

"$PY" - <<'PYEOF' 2>&1 | tee "$OUT/env.txt"
import importlib, os, platform
import torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpus", torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
print("cpus", os.cpu_count())
for name in ("torchvision", "transformers", "peft", "aiohttp", "numpy", "PIL", "xxhash", "typer", "rich",
             "tokenizers", "safetensors", "matplotlib"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except ImportError as exc:
        print(name, "MISSING", exc)
assert torch.cuda.is_available(), "no CUDA device"
PYEOF

farfeed() { "$PY" -m farfeed.cli "$@"; }
CPUS="$("$PY" -c 'import os; print(os.cpu_count())')"
WORKERS=$(( CPUS > 4 ? CPUS - 4 : 1 ))   # DataLoader workers decode the JPEGs; leave a few cores

# The storage site: 12,800 ImageNet-like JPEGs (~110 KB, 320x320) and a Python-source text corpus.
if [ ! -f "$WORK/storage/images/dataset.json" ]; then
    farfeed sample-data images "$WORK/src-images" --count 12800 --classes 10
    farfeed pack images "$WORK/src-images" "$WORK/storage/images" --shard-size 256MiB
fi
if [ ! -f "$WORK/storage/text/dataset.json" ]; then
    farfeed sample-data text "$WORK/src-text" --max-mb 48
    farfeed pack text "$WORK/src-text" "$WORK/storage/text" --tokenizer byte
fi

status=0
# ResNet-50 at 224, bf16 autocast, channels_last, batch 256; 2 interleaved rounds of 3 placements.
farfeed bench train --workload resnet --data "$WORK/storage/images" --device cuda \
    --arch resnet50 --image-size 224 --batch-size 256 --steps 60 --warmup-steps 10 \
    --rounds 2 --workers "$WORKERS" --threads 2 --link tokyo-fukuoka \
    --out "$OUT/resnet" --json "$OUT/resnet.json" --no-progress 2>&1 | tee "$OUT/resnet.log" \
    || status=1
# A ~1.1B Llama (TinyLlama shape), bf16 autocast, seq 1024 x batch 8; checkpoints off (13 GB each).
farfeed bench train --workload llm --data "$WORK/storage/text" --device cuda \
    --model-size 1b --seq-len 1024 --batch-size 8 --lr 3e-4 --steps 40 --warmup-steps 5 \
    --rounds 2 --workers 2 --threads 2 --link tokyo-fukuoka --no-checkpoints \
    --out "$OUT/llm" --json "$OUT/llm.json" --no-progress 2>&1 | tee "$OUT/llm.log" \
    || status=1
cp -r "$OUT/resnet/work/resnet/worker.log" "$OUT/resnet-worker.log" 2>/dev/null || true
cp -r "$OUT/llm/work/llm/worker.log" "$OUT/llm-worker.log" 2>/dev/null || true
echo "gpu_check: results in $OUT (resnet.json, llm.json, */report.md); status $status"
exit $status
