#!/usr/bin/env bash
# Several nodes with SLURM: N-1 training nodes of 8 GPUs + 1 node serving the teacher (vLLM, all 8 GPUs).
#   sbatch --nodes=3 repro/launch/slurm_paper.sh repro/configs/paper/7b_cross_tgpo.yaml
# With 2 training nodes (16 processes) pass --set launch.num_processes=16 --set launch.num_machines=2 and halve
# trainer.gradient_accumulation_steps (4) and steps_per_generation (8) to keep 64 prompts x 8 per update and
# 128 x 8 per rollout step; the dry run checks the arithmetic before any GPU is used.
#SBATCH --job-name=tgpo-paper
#SBATCH --gpus-per-node=8
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
set -euo pipefail
CONFIG=$1; shift
MODELS=${MODELS:-models}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-repro/configs/accelerate/fsdp.yaml}
mapfile -t NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
TEACHER_NODE=${NODES[-1]}; TRAIN_NODES=("${NODES[@]:0:${#NODES[@]}-1}")
NUM_MACHINES=${#TRAIN_NODES[@]}; NUM_PROCESSES=$((NUM_MACHINES * 8)); MAIN=${TRAIN_NODES[0]}
size=$(basename "$CONFIG" | cut -d_ -f1); [[ $size == ablation ]] && size=7b
aligned="$MODELS/aligned/${size}-x-qwen3-30b"
srun --nodes=1 --ntasks=1 -w "$TEACHER_NODE" vllm serve "$aligned/teacher" --port 8001 --tensor-parallel-size 8 \
  --max-model-len 9216 --logprobs-mode processed_logprobs --max-logprobs 20 &
args=(--config "$CONFIG" --set "model=$aligned/student" --set "teacher_model=$aligned/teacher"
      --set "trainer.teacher_server_url=http://$TEACHER_NODE:8001" --set "trainer.teacher_server_timeout=1800"
      --set "launch.num_machines=$NUM_MACHINES" --set "launch.num_processes=$NUM_PROCESSES"
      --set "launch.accelerate_config=null" "$@")
tgpo train "${args[@]}" --dry-run
srun --nodes="$NUM_MACHINES" --ntasks-per-node=1 -w "$(IFS=,; echo "${TRAIN_NODES[*]}")" bash -c \
  "accelerate launch --config_file $ACCELERATE_CONFIG --num_machines $NUM_MACHINES --num_processes $NUM_PROCESSES \
   --machine_rank \$SLURM_NODEID --main_process_ip $MAIN --main_process_port 29500 \
   -m tgpo.cli train ${args[*]}"
