#!/usr/bin/env bash
# One short GPU check (repro/launch/gpu_check.py): the teacher pass's peak memory at 1,024 + 8,192 positions and a
# 152k vocabulary per row chunk (CUDA allocator, beside the formula), one Qwen3-30B-A3B layer's activations,
# position- vs row-chunked time, then a few TGPO/GRPO steps on CUDA. Missing Python packages travel as wheels in
# .whl/ (device README).
# Usage on the device tool: bash repro/launch/gpu_check.sh   (writes $OUT/gpu_check.json and $OUT/gpu_check.log)
set -u
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu_check.log"
python3 repro/launch/gpu_check.py 2>&1 | grep -v -E "Loading weights|FutureWarning|warnings.warn" | tee -a "$OUT/gpu_check.log"
