"""The CPU divergence lab: a synthetic reasoning world (sums of one-digit numbers solved step by step, ending
in ``\\boxed{}``), a shared character-level tokenizer, and tiny Llama-config students/teachers shipped as package
data in ``tgpo/lab/zoo/<name>/`` (built by ``tgpo lab build``; ``$TGPO_LAB_MODELS`` points elsewhere).

For the RL stage::

    from tgpo.lab import model_path, rl_dataset, EVAL_TASKS, STUDENT, TEACHER_CROSS
    student = model_path(STUDENT)           # AutoModelForCausalLM / AutoTokenizer.from_pretrained(student)
    teacher = model_path(TEACHER_CROSS)
    train = rl_dataset(n=1024, seed=0)      # datasets.Dataset with a "prompt" and an "answer" column
    # evaluate: tgpo eval --tasks tgpo_lab ...  (EVAL_GROUP / EVAL_TASKS; YAML in TASKS_DIR / "lab")
    # reward:   tgpo.grading.math_correct(completion, row["answer"])

Heavy imports (torch, transformers, datasets) happen lazily.
"""

from __future__ import annotations

from tgpo.lab.config import (
    DEFAULT_MODELS,
    MODELS,
    SMALL_STUDENT,
    STUDENT,
    TEACHER_CROSS,
    TEACHER_IN,
    WORLD,
    LabModelConfig,
    WorldConfig,
    config_hash,
    get_model_config,
    teacher_config,
)
from tgpo.lab.world import EVAL_SPLITS, as_dataset, is_correct, make_split, rl_dataset

#: lm-eval tasks (YAML in ``TASKS_DIR / "lab"``, the package's task folder ``tgpo.tasks``).
EVAL_TASKS = ("tgpo_lab_id", "tgpo_lab_hard", "tgpo_lab_ood")
EVAL_GROUP = "tgpo_lab"

_LAZY = {
    "model_path": "tgpo.lab.models",
    "default_models_dir": "tgpo.lab.models",
    "load": "tgpo.lab.models",
    "build": "tgpo.lab.models",
    "generate": "tgpo.lab.models",
    "evaluate": "tgpo.lab.models",
    "argmax_agreement": "tgpo.lab.models",
    "read_build_info": "tgpo.lab.models",
    "build_tokenizer": "tgpo.lab.tokenizer",
}

__all__ = [
    "DEFAULT_MODELS",
    "EVAL_GROUP",
    "EVAL_SPLITS",
    "EVAL_TASKS",
    "MODELS",
    "SMALL_STUDENT",
    "STUDENT",
    "TASKS_DIR",
    "TEACHER_CROSS",
    "TEACHER_IN",
    "WORLD",
    "LabModelConfig",
    "WorldConfig",
    "as_dataset",
    "config_hash",
    "get_model_config",
    "is_correct",
    "make_split",
    "rl_dataset",
    "teacher_config",
    *_LAZY,
]


def __getattr__(name):
    if name == "TASKS_DIR":  # resolved on use: the package's lm-eval task folder
        from importlib.resources import files
        from pathlib import Path

        return Path(str(files("tgpo.tasks")))
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tgpo.lab' has no attribute {name!r}")
