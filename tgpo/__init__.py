"""tgpo: Teacher-Guided Policy Optimization on TRL, with the paper's evaluation protocol.

Heavy parts (TRL, lm-eval) are imported lazily so that ``tgpo.objectives`` and
``tgpo.grading`` stay cheap to import.
"""

__version__ = "0.1.0"

_LAZY = {
    "TGPOConfig": "tgpo.config",
    "TGPOTrainer": "tgpo.trainer",
}

__all__ = ["TGPOConfig", "TGPOTrainer", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tgpo' has no attribute {name!r}")
