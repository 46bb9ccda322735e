"""``tgpo train --dry-run``: a config resolved into the full plan of a run, without a GPU and without downloads.

:func:`build_plan` reads a resolved run config (:func:`tgpo.run_config.load_run_config`) and works out, from configs
only:

* the models — a local folder's ``config.json``, a Hub model's ``config.json`` from the local Hugging Face cache,
  or else, for the paper's Hub models (which cannot be fetched here), the small table :data:`KNOWN_MODELS` of
  architecture facts from their published ``config.json``/tokenizer files; parameter counts estimated from the
  architecture;
* the tokenizers' compatibility — same id space? embedding rows? special tokens? does the pair need ``tgpo align``?
  (local folders: the real :func:`tgpo.teacher.check_vocabularies`; Hub models: the table's tokenizer facts);
* devices and processes (``launch:`` section and the accelerate config it names), vLLM rollouts, where the
  teacher runs;
* the batch arithmetic, as TRL's own ``GRPOConfig`` derives it on the planned processes, and the one rule of ours
  (see :func:`batch_arithmetic`);
* the guidance schedule and a rough per-GPU memory estimate.

:func:`render_plan` turns it into text. Inconsistent settings raise :class:`PlanError` (or, for a field or batch
setting the config refuses itself, :class:`tgpo.run_config.ConfigError`) with one clear message.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .data import DEFAULT_HUB_DATASET
from .objectives import ADVANTAGE_EPS

__all__ = ["KNOWN_MODELS", "PlanError", "batch_arithmetic", "build_plan", "estimate_parameters", "render_plan"]


class PlanError(ValueError):
    """The config cannot make a consistent run; the message says which numbers disagree."""


# Architecture facts of the paper's models, as published in their Hub config.json / tokenizer files (recorded here,
# never fetched), for a machine that has neither the folders nor the Hub cache: a local folder's config.json, or the
# model's config.json in the local Hugging Face cache, is read instead when there is one (:func:`_describe_model`).
# The tokenizer facts are kept for cached models too (the dry run reads no tokenizer files of Hub models).
# ``tokenizer_len`` = ids the tokenizer knows (BPE + added tokens); the BPE ids 0..151642 are shared
# by the whole Qwen2/2.5/3 family; the Qwen3 tokenizer appends <tool_response>, </tool_response>, <think>, </think>.
_QWEN25_MATH_TOKENIZER = {"family": "qwen2-bpe", "bpe_ids": 151643, "tokenizer_len": 151665,
                          "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "bos_token": None}
KNOWN_MODELS: dict[str, dict] = {
    "Qwen/Qwen2.5-Math-1.5B": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536,
        "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
        "max_position_embeddings": 4096, "rope_theta": 10000.0, "tie_word_embeddings": True,
        "tokenizer": _QWEN25_MATH_TOKENIZER,
    },
    "Qwen/Qwen2.5-Math-7B": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 152064, "hidden_size": 3584,
        "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
        "max_position_embeddings": 4096, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "tokenizer": _QWEN25_MATH_TOKENIZER,
    },
    "Qwen/Qwen3-30B-A3B-Thinking-2507": {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 151936,
        "hidden_size": 2048, "head_dim": 128, "num_hidden_layers": 48, "num_attention_heads": 32,
        "num_key_value_heads": 4, "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
        "max_position_embeddings": 262144, "tie_word_embeddings": False,
        "tokenizer": {"family": "qwen2-bpe", "bpe_ids": 151643, "tokenizer_len": 151669,
                      "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None},
    },
}
#: The paper's training set (docs/method.md §3; tgpo/data.py's default) and its rows, for epochs.
KNOWN_DATASETS = {DEFAULT_HUB_DATASET: 46_000}
#: GPU memory assumed when ``launch.gpu_memory_gb`` is unset (the paper's A100-80GB).
DEFAULT_GPU_MEMORY_GB = 80


# ------------------------------------------------------------------------------------------------ models
def estimate_parameters(cfg: dict) -> dict:
    """``{"total", "active"}`` parameters of a decoder-only (dense or MoE) transformer from its config."""
    V, H, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or H // heads
    qkv_bias = cfg.get("model_type", "") in ("qwen2",)
    attn = H * heads * hd + 2 * H * kv * hd + heads * hd * H + (heads * hd + 2 * kv * hd if qkv_bias else 0)
    if cfg.get("num_experts"):
        expert = 3 * H * cfg["moe_intermediate_size"]
        mlp_total, mlp_active = cfg["num_experts"] * expert + H * cfg["num_experts"], cfg["num_experts_per_tok"] * expert
    else:
        mlp_total = mlp_active = 3 * H * cfg["intermediate_size"]
    embed = V * H * (1 if cfg.get("tie_word_embeddings") else 2)
    norms = L * 2 * H + H
    return {"total": embed + L * (attn + mlp_total) + norms, "active": embed + L * (attn + mlp_active) + norms}


def _describe_model(name: str | None, role: str) -> dict | None:
    from .hub import ModelNotFoundError, resolve_model

    if name is None:
        return None
    info = {"role": role, "name": str(name)}
    try:  # the same resolution as TGPOTrainer: a folder, the HF cache, or (online) a Hub id; never a download
        where = resolve_model(name, role)
    except ModelNotFoundError as err:
        if str(name) not in KNOWN_MODELS:
            raise PlanError(str(err)) from None
        where = None
    path = Path(where) if where else None
    if path is not None and path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.exists():
            raise PlanError(f"{role} folder {path} has no config.json")
        cfg = json.loads(cfg_file.read_text())
        cfg = cfg.get("text_config", cfg) if "vocab_size" not in cfg else cfg
        cached = path != Path(str(name)).expanduser()
        if cached:  # a Hub id's snapshot: its tokenizer is read from it when the cache holds one
            tokenizer = KNOWN_MODELS.get(str(name), {}).get("tokenizer")
            has_tokenizer = any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json"))
            info.update(source=f"the local Hugging Face cache ({cfg_file})", path=str(path), local=has_tokenizer,
                        config={**cfg, **({"tokenizer": tokenizer} if tokenizer else {})})
        else:
            info.update(source=f"local folder ({cfg_file})", config=cfg, local=True, path=str(path))
    elif (cfg_file := _hub_cache_config(str(name))) is not None:
        cfg = json.loads(cfg_file.read_text())
        cfg = cfg.get("text_config", cfg) if "vocab_size" not in cfg else cfg
        tokenizer = KNOWN_MODELS.get(str(name), {}).get("tokenizer")
        info.update(source=f"the local Hugging Face cache ({cfg_file})",
                    config={**cfg, **({"tokenizer": tokenizer} if tokenizer else {})}, local=False)
    elif str(name) in KNOWN_MODELS:
        info.update(source="built-in table of the Hub config (not downloaded)", config=KNOWN_MODELS[str(name)],
                    local=False)
    else:
        info.update(source="Hub id not in the built-in table: facts unknown without a download", config=None,
                    local=False)
        return info
    try:
        info["params"] = estimate_parameters(info["config"])
    except KeyError:
        info["params"] = None
    return info


def _hub_cache_config(name: str) -> Path | None:
    """The ``config.json`` of Hub model ``name`` if it is already in the local Hugging Face cache (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


def _local_tokenizer(info: dict):
    from .teacher import load_tokenizer

    return load_tokenizer(info.get("path", info["name"]))


def tokenizer_verdict(student: dict, teacher: dict | None) -> dict:
    """Whether teacher and student share the student's id space, and whether the pair needs ``tgpo align``."""
    if teacher is None:
        return {"verdict": "no teacher", "needs_align": False, "notes": []}
    notes: list[str] = []
    s_cfg, t_cfg = student.get("config"), teacher.get("config")
    if student.get("local") and teacher.get("local"):
        from .teacher import VocabularyMismatchError, check_vocabularies

        s_tok, t_tok = _local_tokenizer(student), _local_tokenizer(teacher)
        try:
            check_vocabularies(s_tok, t_tok, t_cfg["vocab_size"])
        except VocabularyMismatchError as err:
            return {"verdict": f"INCOMPATIBLE: {err}", "needs_align": True, "notes": notes, "error": str(err)}
        s_len, t_len = len(s_tok), len(t_tok)
        special = {k: (getattr(s_tok, k), getattr(t_tok, k)) for k in ("eos_token", "pad_token")}
        source = "checked on the tokenizer files"
    elif s_cfg and t_cfg and "tokenizer" in s_cfg and "tokenizer" in t_cfg:
        st, tt = s_cfg["tokenizer"], t_cfg["tokenizer"]
        if st["family"] != tt["family"]:
            return {"verdict": f"INCOMPATIBLE: tokenizer families differ ({st['family']} vs {tt['family']})",
                    "needs_align": True, "notes": notes, "error": "families differ"}
        s_len, t_len = st["tokenizer_len"], tt["tokenizer_len"]
        if t_len < s_len:
            return {"verdict": f"INCOMPATIBLE: the teacher's tokenizer has {t_len} ids, the student's {s_len}",
                    "needs_align": True, "notes": notes, "error": "teacher tokenizer shorter"}
        special = {k: (st[k], tt[k]) for k in ("eos_token", "pad_token")}
        source = "from the built-in tokenizer facts (same BPE family; ids 0..{} identical)".format(st["bpe_ids"] - 1)
    else:
        return {"verdict": "unknown (tokenizer files not available here; checked at start-up)", "needs_align": None,
                "notes": ["the trainer runs check_vocabularies when it starts"]}
    needs_align = False
    if t_cfg["vocab_size"] < s_len:
        return {"verdict": f"INCOMPATIBLE until aligned: teacher embedding {t_cfg['vocab_size']} rows < student's "
                           f"{s_len} ids", "needs_align": True, "notes": notes, "error": "embedding too small"}
    if t_cfg["vocab_size"] < s_cfg["vocab_size"]:
        needs_align = True
        notes.append(f"the student's output layer has {s_cfg['vocab_size']} rows, the teacher's embedding "
                     f"{t_cfg['vocab_size']}: ids the student can emit would be unreadable; the authors resized both "
                     "to the larger")
    elif t_cfg["vocab_size"] > s_cfg["vocab_size"]:
        notes.append(f"teacher embedding {t_cfg['vocab_size']} rows > student's {s_cfg['vocab_size']}: fine, the "
                     "argmax is restricted to the student's rows")
    for key, (s_val, t_val) in special.items():
        if s_val != t_val:
            needs_align = True
            notes.append(f"{key} differs (student {s_val!r}, teacher {t_val!r}): the authors set the teacher's to the "
                         "student's")
    if t_len > s_len:
        notes.append(f"the teacher knows {t_len - s_len} ids past the student's {s_len}; its argmax is restricted to "
                     "the student's ids")
    verdict = f"same id space ({source}); " + ("needs `tgpo align` before training" if needs_align else "no alignment needed")
    return {"verdict": verdict, "needs_align": needs_align, "notes": notes}


# -------------------------------------------------------------------------------------------- batches
def batch_arithmetic(args) -> dict:
    """Derived batch figures of a run, from its config as TRL validated it on the planned processes.

    ``args`` is a :class:`tgpo.config.PlannedConfig` (:func:`tgpo.run_config.make_args` with ``probe=True``):
    TRL's ``GRPOConfig.__post_init__`` has already derived ``steps_per_generation`` and ``generation_batch_size``
    from ``world_size`` and refused what it refuses. The one rule of ours not in a config's own validation: when
    each optimizer update reads one rollout batch (``steps_per_generation x num_iterations`` a multiple of
    ``gradient_accumulation_steps``, the paper's PPO mini-batches), ``max_steps`` (optimizer updates) is a whole
    number of rollout batches; otherwise some updates straddle two rollout batches, as TRL allows
    (:meth:`tgpo.config.TGPOConfig.rollout_step`).
    """
    P, B, GA = args.world_size, args.per_device_train_batch_size, args.gradient_accumulation_steps
    G, spg, gbs = args.num_generations, args.steps_per_generation, args.generation_batch_size
    micro = spg * args.num_iterations
    upg = micro // GA if micro % GA == 0 else micro / GA
    per_update = B * P * GA
    max_steps = int(args.max_steps)
    if max_steps > 0 and isinstance(upg, int) and max_steps % upg:
        raise PlanError(f"max_steps ({max_steps} optimizer updates) is not a multiple of the {upg} updates per "
                        "rollout batch")
    return {
        "processes": P, "per_device_train_batch_size": B, "gradient_accumulation_steps": GA,
        "num_generations": G, "steps_per_generation": spg, "generation_batch_size": gbs,
        "prompts_per_rollout_step": gbs // G, "completions_per_rollout_step": gbs,
        "updates_per_rollout_step": upg, "completions_per_update": per_update,
        "prompts_per_update": per_update / G, "micro_batches_per_update_per_process": GA,
        "optimizer_steps": max_steps, "rollout_steps": -(-max_steps * GA // micro) if max_steps > 0 else None,
    }


# ------------------------------------------------------------------------------------------------ plan
def plan_bf16(trainer: dict) -> bool:
    """Whether the run computes in bf16 (TRL's default on GPUs)."""
    return bool(trainer.get("bf16", True))


def this_machine(trainer: dict) -> dict:
    """The device and precision ``tgpo train`` would use on *this* machine: CUDA GPUs in bf16 unless the trainer says
    otherwise; without CUDA (or with ``use_cpu``) the CPU in fp32, as :data:`tgpo.run_config.CPU_DEFAULTS` sets."""
    import torch

    if torch.cuda.is_available() and not trainer.get("use_cpu"):
        n = torch.cuda.device_count()
        return {"device": f"{n} CUDA GPU(s) ({torch.cuda.get_device_name(0)})",
                "precision": "bf16" if plan_bf16(trainer) else "fp32"}
    why = "use_cpu is set" if trainer.get("use_cpu") else "no CUDA device"
    return {"device": f"CPU ({why}; {torch.get_num_threads()} torch threads)",
            "precision": "bf16" if trainer.get("bf16") is True else "fp32"}


#: pip packages of transformers' reporting integrations whose name differs from the ``report_to`` name.
REPORT_PACKAGES = {"comet_ml": "comet-ml", "azure_ml": "azureml-core", "flyte": "flytekit", "kubeflow": "kubeflow",
                   "neptune": "neptune"}


def missing_report_backends(report_to) -> dict[str, str]:
    """``{report_to backend: pip package}`` for each backend the trainer would report to that is not importable here
    (transformers' own availability checks); empty for ``none``/``all``."""
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    wanted = [report_to] if isinstance(report_to, str) else list(report_to or [])
    wanted = [w for w in wanted if w not in ("none", "all")]
    if not wanted:
        return {}
    available = set(get_available_reporting_integrations())
    return {w: REPORT_PACKAGES.get(w, w) for w in wanted if w not in available}


def _fmt_params(n: float | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def _load_accelerate(path: str | None, config_path: Path | None) -> tuple[dict | None, str | None]:
    import yaml

    if not path:
        return None, None
    candidates = [Path(path)]
    if config_path is not None:
        candidates.append(Path(config_path).parent / path)
        for parent in Path(config_path).resolve().parents:  # repo-relative paths from a nested config
            candidates.append(parent / path)
    for cand in candidates:
        if cand.is_file():
            return yaml.safe_load(cand.read_text()) or {}, str(cand)
    raise PlanError(f"launch.accelerate_config {path!r} not found")


def build_plan(run) -> dict:
    """The resolved plan of a :class:`tgpo.run_config.RunConfig` (see the module docstring). Loads no weights."""
    from .objectives import METHODS
    from .run_config import check_teacher, make_args

    trainer = dict(run.trainer)
    config_path = run.source
    launch = run.launch
    accel, accel_path = _load_accelerate(launch.accelerate_config, config_path)
    processes = int(launch.num_processes or (accel or {}).get("num_processes") or 1)
    machines = int(launch.num_machines or (accel or {}).get("num_machines") or 1)
    overridden = accel and accel.get("num_processes") and int(accel["num_processes"]) != processes
    gpus_per_node = int(launch.gpus_per_node or max(1, processes // machines))
    if processes > machines * gpus_per_node:
        raise PlanError(f"{processes} processes do not fit {machines} machine(s) x {gpus_per_node} GPUs")
    # Field validation and TRL's batch arithmetic by the config itself, on a CPU-safe copy that TRL sees on the
    # planned number of processes (bf16 and vLLM are for the GPU run).
    args = make_args(trainer, probe=True, processes=processes)
    batch = batch_arithmetic(args)

    use_vllm = bool(trainer.get("use_vllm", False))
    vllm_mode = args.vllm_mode
    tp = int(args.vllm_tensor_parallel_size)
    if use_vllm and vllm_mode == "colocate" and processes % tp:
        raise PlanError(f"vllm_tensor_parallel_size={tp} must divide the {processes} training processes (colocate)")

    student = _describe_model(run.model, "student")
    teacher_name = run.teacher_model
    served = bool(args.teacher_server_url)
    check_teacher(args, teacher_name)
    teacher = _describe_model(teacher_name, "teacher") if (args.needs_teacher and teacher_name) else None
    tokenizers = tokenizer_verdict(student, teacher)
    if "error" in tokenizers and (student.get("local") and (teacher or {}).get("local")):
        raise PlanError(tokenizers["verdict"])

    # Context length: prompt + response must fit the student's positions (the authors used 16k variants; docs/method.md §3).
    warnings: list[str] = []
    missing = missing_report_backends(trainer.get("report_to"))
    if missing:
        warnings.append("report_to " + ", ".join(f"{b} needs the package `{pkg}` (pip install {pkg})"
                                                 for b, pkg in missing.items()) + ": the run would stop at its start")
    if overridden:
        warnings.append(f"{accel_path} says num_processes={accel['num_processes']}; launch.num_processes={processes} "
                        "wins (the launch recipes pass --num_processes to accelerate launch)")
    need_ctx = int(args.vllm_max_model_length or args.max_completion_length)
    for info in (student, teacher):
        if info and info.get("config") and info["config"].get("max_position_embeddings", 1 << 30) < need_ctx:
            warnings.append(f"{info['role']} {info['name']} has {info['config']['max_position_embeddings']} positions "
                            f"< the context needed ({need_ctx}): use a long-context variant (the authors used 16k "
                            "variants of the students; see repro/launch/README.md)")
    if tokenizers.get("needs_align"):
        warnings.append("run `tgpo align` (repro/launch/prepare_models.sh) and point model/teacher_model at the "
                        "aligned folders before training")

    # Guidance schedule, in training (rollout) steps.
    rollout_steps = batch["rollout_steps"] or 0
    schedule = None
    if METHODS[args.method].scheduled:
        from .objectives import guidance_weight

        l0, delta, lmin = args.guidance_weight, args.guidance_decay, args.guidance_min
        points = sorted({k for k in (1, 100, 200, 201, rollout_steps) if 1 <= k <= max(rollout_steps, 1)})
        zero = None
        if max(l0, lmin) <= 0:
            zero = 1
        elif lmin <= 0 and delta > 0:
            start = max(1, int(l0 / delta) - 2)
            zero = next(k for k in range(start, start + 10) if guidance_weight(k, l0, delta, lmin) <= 1e-12)
        schedule = {"lambda_0": l0, "delta": delta, "lambda_min": lmin,
                    "at": {k: guidance_weight(k, l0, delta, lmin) for k in points}, "zero_at": zero,
                    "guided_steps": min(rollout_steps, (zero or rollout_steps + 1) - 1)}

    # Memory, rough, per GPU (GB): FSDP/ZeRO-3 shard fp32 master + Adam + bf16 grads; teacher logits chunk.
    gpu_gb = float(launch.gpu_memory_gb or DEFAULT_GPU_MEMORY_GB)
    memory, teacher_chunks = {}, None
    if student.get("params"):
        memory["student_states_sharded_gb"] = student["params"]["total"] * 16 / processes / 1e9
    if use_vllm and vllm_mode == "colocate":
        memory["vllm_colocate_gb"] = float(args.vllm_gpu_memory_utilization) * gpu_gb
    if teacher and not served and teacher.get("params"):
        memory["teacher_weights_bf16_gb"] = teacher["params"]["total"] * 2 / 1e9
    if teacher and not served and teacher.get("config"):
        from .teacher import (
            AUTO,
            choose_teacher_chunks,
            decoder_layer_width,
            memory_budget_bytes,
            teacher_pass_peak_bytes,
        )

        cfg_t = teacher["config"]
        all_rows = batch["per_device_train_batch_size"] * batch["steps_per_generation"]
        T = int(args.max_completion_length)
        prompt = max(0, int(args.vllm_max_model_length or T) - T)  # the prompt's share of the context
        dtype_bytes = 2 if plan_bf16(trainer) else 4
        chunk_size, chunk_tokens = args.teacher_chunk_size, args.teacher_chunk_tokens
        if AUTO in (chunk_size, chunk_tokens):  # what TGPOTrainer will choose on the planned device
            cpu = bool(args.use_cpu)
            # half of what the student's states, vLLM and the teacher's weights leave (as the trainer takes half
            # of the free memory once they are loaded)
            budget = memory_budget_bytes("cpu") if cpu else int((gpu_gb - sum(memory.values())) * 1e9 / 2)
            auto_rows, auto_tokens, why = choose_teacher_chunks(cfg_t, all_rows, T, prompt_len=prompt,
                                                                dtype_bytes=dtype_bytes, device="cpu" if cpu else "cuda",
                                                                budget_bytes=budget)
            chunk_size = auto_rows if chunk_size == AUTO else chunk_size
            chunk_tokens = auto_tokens if chunk_tokens == AUTO else chunk_tokens
            teacher_chunks = {"chunk_size": chunk_size, "chunk_tokens": chunk_tokens, "why": why}
        rows = chunk_size or all_rows
        # the same formula the teacher pass is tested against (tests/test_memory.py): body activations of one row
        # chunk plus one output-head tile, beyond the teacher's weights
        memory["teacher_pass_chunk_gb"] = teacher_pass_peak_bytes(
            rows, T, cfg_t["vocab_size"], cfg_t["hidden_size"], chunk_tokens,
            layer_width=decoder_layer_width(cfg_t), prompt_len=prompt, dtype_bytes=dtype_bytes,
        ) / 1e9
        budget = gpu_gb - memory.get("teacher_weights_bf16_gb", 0.0)
        if memory["teacher_pass_chunk_gb"] > 0.5 * budget:
            warnings.append(f"the teacher pass of one chunk ({rows} rows x {prompt + T} positions) takes "
                            f"~{memory['teacher_pass_chunk_gb']:.0f} GB beside {memory.get('teacher_weights_bf16_gb', 0):.0f}"
                            " GB of teacher weights: lower teacher_chunk_size or teacher_chunk_tokens")

    return {
        "config": str(config_path) if config_path else None, "method": args.method, "output_dir": args.output_dir,
        "student": student, "teacher": teacher, "teacher_served": served,
        "teacher_server_url": args.teacher_server_url, "teacher_server": launch.teacher_server,
        "tokenizers": tokenizers, "machines": machines, "processes": processes, "gpus_per_node": gpus_per_node,
        "accelerate": {"path": accel_path, "distributed_type": (accel or {}).get("distributed_type"),
                       "mixed_precision": (accel or {}).get("mixed_precision")} if accel else None,
        "vllm": {"use_vllm": use_vllm, "mode": vllm_mode, "tensor_parallel_size": tp,
                 "gpu_memory_utilization": args.vllm_gpu_memory_utilization},
        "precision": "bf16" if plan_bf16(trainer) else "fp32", "here": this_machine(trainer),
        "launch_planned": any(value is not None for value in asdict(launch).values()),
        "batch": batch, "schedule": schedule, "memory": memory, "teacher_chunks": teacher_chunks, "warnings": warnings,
        "hyper": {k: getattr(getattr(args, k), "value", getattr(args, k))  # enums (lr_scheduler_type) by value
                  for k in dict.fromkeys((*HYPERPARAMETERS, *method_fields(args.method)))},
        "entropy": entropy_summary(args, processes),
        "dataset": asdict(run.dataset),
        "preset": preset_summary(run.preset, args),
    }


#: The optimisation and sampling settings the plan prints for every method (the method's own loss fields follow).
HYPERPARAMETERS = ("learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2",
                   "adam_epsilon", "max_grad_norm", "temperature", "max_completion_length", "vllm_max_model_length",
                   "beta", "reward", "teacher_temperature", "teacher_chunk_size", "teacher_chunk_tokens")
#: Tokens per GPU of the authors' dynamic micro-batches (their ``ppo_max_token_len_per_gpu``; docs/method.md §3).
AUTHORS_MICRO_BATCH_TOKENS = 16_384


def method_fields(method: str) -> list[str]:
    """The ``TGPOConfig`` fields the method's loss reads (its registry entry), entropy bonus included."""
    from .objectives import ENTROPY_FIELDS, METHODS, loss_config_sources

    sources = loss_config_sources()
    return [sources[f] for f in sources if f in METHODS[method].reads | ENTROPY_FIELDS]


def entropy_summary(args, processes: int) -> dict:
    """The entropy bonus's factor and how it stands against the authors' (a sum of per-micro-batch token means)."""
    padded_sum = args.loss_type == "dr_grpo" and not args.dr_grpo_row_mean
    tokens = args.per_device_train_batch_size * args.gradient_accumulation_steps * int(
        args.vllm_max_model_length or args.max_completion_length)
    most = -(-tokens // AUTHORS_MICRO_BATCH_TOKENS) * processes  # at the longest rollouts, over all GPUs
    if padded_sum:
        authors = (f"against this padded-length sum the authors' bonus is n_micro x the suite's at factor 1, n_micro "
                   f"their micro-batches of one update over all GPUs (<= {most} here at the longest rollouts; it "
                   "depends on rollout lengths): set entropy_micro_batches to state it")
    else:
        authors = ("against a token-mean policy-gradient term the ratio is the authors' at factor 1 (both terms are "
                   "means per micro-batch, summed over micro-batches in their run)")
    return {"coef": args.entropy_coef, "factor": args.entropy_micro_batches, "authors": authors,
            "max_micro_batches": most if padded_sum else None}


ADVANTAGE_TEXT = {"group": f"A = (r - mean) / (std + {ADVANTAGE_EPS:g}) per group",
                  "batch": f"A = (r - mean) / (batch std + {ADVANTAGE_EPS:g})", "none": "A = r - mean (no std)"}
#: What the authors' dynamic micro-batching does that a token mean over the batch cannot reproduce (docs/method.md §3).
LOSS_SCALE_NOTE = (f"the authors' token means are per dynamic micro-batch (<= {AUTHORS_MICRO_BATCH_TOKENS:,} tokens per GPU) "
                   "and summed over "
                   "the micro-batches of a step (gradient accumulation 1), so their loss is about n_micro x this token "
                   "mean: not reproduced exactly (Adam cancels a constant scale; clipping at max_grad_norm does not)")


def aggregation_text(loss_type: str, row_mean: bool) -> str:
    return {"dapo": "token mean over the batch",
            "dr_grpo": "token sum / max_completion_length" + (" / rows (TRL's dr_grpo)" if row_mean else
                                                              " (the authors' loss_remove_token_mean)"),
            "grpo": "mean of per-sequence token means", "bnpo": "token mean per micro-batch"}[loss_type]


def preset_summary(preset: str | None, args) -> dict:
    """The run's normalisation and aggregation, and (with a preset) every method's under that preset."""
    from .objectives import METHODS
    from .run_config import presets

    def describe(scale, loss_type, row_mean):
        return {"advantage": ADVANTAGE_TEXT[scale], "aggregation": aggregation_text(loss_type, row_mean)}

    out = {"name": preset, "run": describe(args.scale_rewards, args.loss_type, args.dr_grpo_row_mean), "methods": {},
           "about": ""}
    if preset:
        table = presets()[preset]
        out["about"] = table["_about"]
        for method, spec in METHODS.items():
            settings = table[method]
            loss_type, row_mean = spec.resolve_aggregation(settings.get("loss_type"), settings.get("dr_grpo_row_mean"))
            out["methods"][method] = describe(settings.get("scale_rewards", "group"), loss_type, row_mean)
    if preset and preset.startswith("authors") and args.loss_type == "dapo":
        out["note"] = LOSS_SCALE_NOTE
    return out


def render_plan(plan: dict) -> str:
    """The plan as text (what ``tgpo train --dry-run`` prints)."""
    out = [f"tgpo train --dry-run: {plan['config'] or '(config)'}", f"  method      {plan['method']}",
           f"  output_dir  {plan['output_dir']}"]
    out.append("models (nothing downloaded):")
    for info in (plan["student"], plan["teacher"]):
        if info is None:
            continue
        cfg = info.get("config") or {}
        params = info.get("params")
        size = "params ?" if not params else (f"params {_fmt_params(params['total'])}" + (
            f" ({_fmt_params(params['active'])} active)" if params["active"] != params["total"] else ""))
        arch = (cfg.get("architectures") or ["?"])[0]
        out.append(f"  {info['role']:<8} {info['name']}  [{info['source']}]")
        if cfg:
            out.append(f"           {arch}, vocab {cfg.get('vocab_size')}, hidden {cfg.get('hidden_size')}, layers "
                       f"{cfg.get('num_hidden_layers')}, positions {cfg.get('max_position_embeddings')}, {size}")
    if plan["teacher"] is None:
        out.append("  teacher  none (this method reads no teacher pass)" if not plan["teacher_served"] else "")
    if plan["teacher_served"]:
        ts = plan["teacher_server"] or {}
        out.append(f"  teacher pass: served by vLLM at {plan['teacher_server_url']}"
                   + (f" ({ts})" if ts else "") + "; teacher_model names its tokenizer only")
    elif plan["teacher"] is not None:
        chunks = plan.get("teacher_chunks")
        rows = chunks["chunk_size"] if chunks else plan["hyper"].get("teacher_chunk_size")
        tokens = chunks["chunk_tokens"] if chunks else plan["hyper"].get("teacher_chunk_tokens")
        out.append(f"  teacher pass: local, beside the student in every training process, chunk {rows or 'all'} rows, head tiles of "
                   f"{tokens or 'all'} positions" + (f" (auto: {chunks['why']})" if chunks else ""))
    tok = plan["tokenizers"]
    out.append(f"tokenizers: {tok['verdict']}")
    out += [f"  - {n}" for n in tok.get("notes", [])]
    out.append("devices:")
    here = plan["here"]
    out.append(f"  this machine: {here['device']}; `tgpo train` here computes in {here['precision']}")
    if plan["launch_planned"]:
        out.append(f"  launch plan (the config's launch:): {plan['machines']} machine(s) x {plan['gpus_per_node']} "
                   f"GPUs, {plan['processes']} training processes"
                   + (f", accelerate {plan['accelerate']['distributed_type']} ({plan['accelerate']['path']})"
                      if plan["accelerate"] else ", no accelerate config") + f", precision {plan['precision']}")
    v = plan["vllm"]
    out.append("  rollouts: " + (f"vLLM {v['mode']}, tensor parallel {v['tensor_parallel_size']}, gpu_memory_utilization "
                                  f"{v['gpu_memory_utilization']}" if v["use_vllm"] else "transformers generate"))
    b = plan["batch"]
    out.append("batch arithmetic (TRL 1.16 terms):")
    out.append(f"  per_device_train_batch_size {b['per_device_train_batch_size']} x processes {b['processes']} x "
               f"gradient_accumulation_steps {b['gradient_accumulation_steps']} = {b['completions_per_update']} "
               f"completions per optimizer update = {b['prompts_per_update']:g} prompts x {b['num_generations']} rollouts")
    out.append(f"  steps_per_generation {b['steps_per_generation']} -> generation_batch_size {b['generation_batch_size']}"
               f" = {b['prompts_per_rollout_step']} prompts x {b['num_generations']} rollouts per rollout step, "
               f"{b['updates_per_rollout_step']} optimizer update(s) per rollout step")
    out.append(f"  micro-batches per update per process {b['micro_batches_per_update_per_process']} "
               f"(of {b['per_device_train_batch_size']} rows)")
    out.append(f"  max_steps {b['optimizer_steps']} optimizer updates = {b['rollout_steps']} rollout (training) steps")
    if b["rollout_steps"]:
        total_prompts = b["rollout_steps"] * b["prompts_per_rollout_step"]
        ds = plan["dataset"]
        rows = ds["limit"] or KNOWN_DATASETS.get(ds["path"] or DEFAULT_HUB_DATASET)
        out.append(f"  {total_prompts} prompts drawn" + (f" = {total_prompts / rows:.2f} epochs of {rows} rows" if rows else ""))
    p = plan["preset"]
    out.append(f"preset: {p['name'] or 'none (the config as written)'}" + (f" — {p['about']}" if p["about"] else ""))
    out.append(f"  this run ({plan['method']}): advantages {p['run']['advantage']}; losses {p['run']['aggregation']}")
    for method, d in p["methods"].items():
        out.append(f"  {method:<15} {d['advantage']}; {d['aggregation']}")
    if p.get("note"):
        out.append(f"  not reproduced: {p['note']}")
    h = plan["hyper"]
    out.append("hyperparameters: " + ", ".join(f"{k} {h[k]}" for k in h))
    e = plan["entropy"]
    out.append(f"entropy bonus: -{e['coef']:g} x entropy_micro_batches {e['factor']:g} x token mean of H; {e['authors']}")
    s = plan["schedule"]
    if s:
        out.append(f"guidance schedule (per rollout step k): lambda_k = max({s['lambda_0']:g} - (k-1) x {s['delta']:g}, "
                   f"{s['lambda_min']:g})")
        out.append("  " + ", ".join(f"k={k}: {w:.3g}" for k, w in s["at"].items()))
        out.append(f"  reaches 0 at step {s['zero_at']}; teacher pass skipped from then on" if s["zero_at"]
                   else "  never reaches 0 (teacher pass every step)")
    else:
        out.append(f"guidance schedule: n/a (method {plan['method']})")
    if plan["memory"]:
        out.append("memory per GPU, rough: " + ", ".join(f"{k} {v:.1f}" for k, v in plan["memory"].items()))
    for w in plan["warnings"]:
        out.append(f"WARNING: {w}")
    return "\n".join(line for line in out if line != "")
