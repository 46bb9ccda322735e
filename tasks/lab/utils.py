"""Loaders and scoring for the lab's lm-eval tasks (``tgpo_lab_*``): the data come from ``tgpo.lab.world``."""

from __future__ import annotations


def _load(split: str, **kwargs):
    from datasets import DatasetDict

    from tgpo.lab.world import as_dataset

    return DatasetDict({"test": as_dataset(split)})


def load_id(**kwargs):
    return _load("id", **kwargs)


def load_hard(**kwargs):
    return _load("hard", **kwargs)


def load_ood(**kwargs):
    return _load("ood", **kwargs)


def process_results(doc: dict, results: list[str]) -> dict:
    """pass@1 of the (greedy) completion, graded by ``tgpo.grading.math_correct`` against ``doc["answer"]``."""
    from tgpo.lab.world import is_correct

    return {"pass@1": float(is_correct(results[0], doc["answer"]))}
