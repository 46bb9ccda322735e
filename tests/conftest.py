"""Shared pytest set-up: tiny models run on one thread, offline (tests import helpers from this folder:
``pythonpath`` in pyproject.toml).

Fixtures: tiny offline student/teacher folders (builders live in tgpo/testing.py)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    """``(student_dir, teacher_dir)``: chat-templated tiny Qwen2 models sharing a character-level vocabulary."""
    from tgpo.testing import save_pair

    return save_pair(tmp_path_factory.mktemp("tiny_chat"), chat_template=True, teacher_hidden=48)


@pytest.fixture(scope="session")
def tiny_plain_pair(tmp_path_factory):
    """Like ``tiny_pair`` but without a chat template (plain-text prompts, as the lab's models)."""
    from tgpo.testing import save_pair

    return save_pair(tmp_path_factory.mktemp("tiny_plain"), chat_template=False)
