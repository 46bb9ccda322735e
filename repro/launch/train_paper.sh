#!/usr/bin/env bash
# One paper run on ONE node of 8 GPUs:  repro/launch/train_paper.sh repro/configs/paper/7b_cross_tgpo.yaml [extra tgpo args]
#   ACCELERATE_CONFIG=repro/configs/accelerate/deepspeed_zero3.yaml to use ZeRO-3 instead of FSDP (base.yaml's default).
# Cross-family configs score with a vLLM-served teacher: this script starts it on the same 8 GPUs (tensor parallel
# 8, 20% of each GPU: 61 GB of bf16 weights / 8 + KV cache), beside the FSDP student and its colocated vLLM (30%).
# The in-family configs colocate the 7B teacher in each training process and start no server.
set -euo pipefail
CONFIG=$1; shift
MODELS=${MODELS:-models}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-repro/configs/accelerate/fsdp.yaml}
TEACHER_PORT=${TEACHER_PORT:-8001}
size=$(basename "$CONFIG" | cut -d_ -f1); [[ $size == ablation ]] && size=7b
args=(--config "$CONFIG")
if grep -q -- "_cross_\|ablation_" <<<"$(basename "$CONFIG")"; then
  aligned="$MODELS/aligned/${size}-x-qwen3-30b"
  [[ -d $aligned ]] || { echo "run repro/launch/prepare_models.sh first ($aligned missing)"; exit 2; }
  args+=(--set "model=$aligned/student" --set "teacher_model=$aligned/teacher"
         --set "trainer.teacher_server_url=http://localhost:$TEACHER_PORT")
  vllm serve "$aligned/teacher" --port "$TEACHER_PORT" --tensor-parallel-size 8 --gpu-memory-utilization 0.2 \
    --max-model-len 9216 --logprobs-mode processed_logprobs --max-logprobs 20 &
  SERVER=$!; trap 'kill $SERVER' EXIT
else
  args+=(--set "model=$MODELS/qwen2.5-math-${size}-16k" --set "teacher_model=$MODELS/qwen2.5-math-7b-16k")  # the 7B teacher reads 9k-token rollouts too
fi
tgpo train "${args[@]}" --dry-run "$@"          # the plan, and a clear stop on an inconsistent config
accelerate launch --config_file "$ACCELERATE_CONFIG" -m tgpo.cli train "${args[@]}" "$@"
