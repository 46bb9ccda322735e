#!/usr/bin/env bash
# Several nodes with SLURM: N-1 training nodes of 8 GPUs + 1 node serving the teacher (vLLM, all 8 GPUs).
#   sbatch --nodes=3 repro/launch/slurm_paper.sh repro/configs/paper/7b_cross_tgpo.yaml [extra tgpo train args]
# With 2 training nodes (16 processes) halve trainer.gradient_accumulation_steps (4) and steps_per_generation (8)
# (--set ...) to keep 64 prompts x 8 per update and 128 x 8 per rollout step; the dry run checks the arithmetic
# before any GPU is used. Model folders come from the config's launch.prepared (prepare_models.sh, $TGPO_MODELS).
#SBATCH --job-name=tgpo-paper
#SBATCH --gpus-per-node=8
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
set -euo pipefail
CONFIG=$1; shift
get() { python -m tgpo.run_config "$CONFIG" --prepared --get "$1"; }
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-$(get launch.accelerate_config)}
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
TEACHER_NODE=${NODES[-1]}; TRAIN_NODES=("${NODES[@]:0:${#NODES[@]}-1}")
NUM_MACHINES=${#TRAIN_NODES[@]}; NUM_PROCESSES=$((NUM_MACHINES * 8)); MAIN=${TRAIN_NODES[0]}
srun --nodes=1 --ntasks=1 -w "$TEACHER_NODE" vllm serve "$(get teacher_model)" --port 8001 --tensor-parallel-size 8 \
  --max-model-len 9216 --logprobs-mode processed_logprobs --max-logprobs 20 &
args=(--config "$CONFIG" --prepared --set "trainer.teacher_server_url=http://$TEACHER_NODE:8001"
      --set "trainer.teacher_server_timeout=1800" --set "launch.num_machines=$NUM_MACHINES"
      --set "launch.num_processes=$NUM_PROCESSES" "$@")
tgpo train "${args[@]}" --dry-run
srun --nodes="$NUM_MACHINES" --ntasks-per-node=1 -w "$(IFS=,; echo "${TRAIN_NODES[*]}")" bash -c \
  "accelerate launch --config_file $ACCELERATE_CONFIG --num_machines $NUM_MACHINES --num_processes $NUM_PROCESSES \
   --machine_rank \$SLURM_NODEID --main_process_ip $MAIN --main_process_port 29500 \
   -m tgpo.cli train ${args[*]}"
