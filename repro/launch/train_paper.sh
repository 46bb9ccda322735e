#!/usr/bin/env bash
# One paper run on ONE node:  repro/launch/train_paper.sh CONFIG [extra `tgpo train` args, e.g. --preset P --set K=V]
#   Model folders come from the config (launch.prepared, made by prepare_models.sh; $TGPO_MODELS, default ./models),
#   the accelerate config and process count from launch.accelerate_config / launch.num_processes
#   (ACCELERATE_CONFIG=repro/configs/accelerate/deepspeed_zero3.yaml to use ZeRO-3 instead of FSDP).
#   Configs with trainer.teacher_server_url (cross-family) start a vLLM teacher server on the same GPUs (tensor
#   parallel 8, 20% of each GPU: 61 GB of bf16 weights / 8 + KV cache) beside the FSDP student and its colocated vLLM.
# CPU rehearsal of this same recipe (what the tests run): TGPO_LAUNCH_CPU=2 overrides the device settings only —
#   2 processes on the CPU (gloo), fp32, no vLLM; the accelerate config file is the real one (on a CPU, accelerate
#   runs its FSDP/ZeRO config as plain data-parallel processes). Use it with a config whose teacher is local.
set -euo pipefail
CONFIG=$1; shift
get() { python -m tgpo.run_config "$CONFIG" --prepared --get "$1"; }
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-$(get launch.accelerate_config)}
PROCESSES=$(get launch.num_processes); PROCESSES=${PROCESSES:-1}
train=(--config "$CONFIG" --prepared)
launch=(--config_file "$ACCELERATE_CONFIG" --num_processes "$PROCESSES")
if [[ -n ${TGPO_LAUNCH_CPU:-} ]]; then
  PROCESSES=$TGPO_LAUNCH_CPU
  launch=(--config_file "$ACCELERATE_CONFIG" --num_processes "$PROCESSES" --num_machines 1 --mixed_precision no
          --dynamo_backend no --main_process_port 0)
  train+=(--set trainer.use_cpu=true --set trainer.bf16=false --set trainer.use_vllm=false
          --set launch.num_processes="$PROCESSES" --set launch.gpus_per_node="$PROCESSES")
fi
SERVER_URL=$(get trainer.teacher_server_url)
if [[ -n $SERVER_URL ]]; then
  [[ -z ${TGPO_LAUNCH_CPU:-} ]] || { echo "train_paper.sh: the CPU rehearsal needs a config with a local teacher"; exit 2; }
  TEACHER=$(get teacher_model); PORT=${SERVER_URL##*:}
  [[ -d $TEACHER ]] || { echo "train_paper.sh: run repro/launch/prepare_models.sh first ($TEACHER missing)"; exit 2; }
  vllm serve "$TEACHER" --port "$PORT" --tensor-parallel-size 8 --gpu-memory-utilization 0.2 \
    --max-model-len 9216 --logprobs-mode processed_logprobs --max-logprobs 20 &
  SERVER=$!; trap 'kill $SERVER' EXIT
fi
tgpo train "${train[@]}" "$@" --dry-run          # the plan, and a clear stop on an inconsistent config
accelerate launch "${launch[@]}" -m tgpo.cli train "${train[@]}" "$@"
