"""Tiny offline models for the test suite, the examples and the bench (no Hub access).

* :func:`build_tokenizer` — a character-level tokenizer (chat markers, ``\\boxed{`` as one token, printable ASCII),
  made by the one character-tokenizer builder, :func:`tgpo.lab.tokenizer.char_tokenizer`;
* :func:`build_model` / :func:`save_model` / :func:`save_pair` — tiny ``Qwen2ForCausalLM`` models (float32) over it,
  and student/teacher folders that ``from_pretrained`` loads exactly;

The memory and time probes of the bench live in ``bench/probes.py``.

Imports only the package's own dependencies (torch, transformers, tokenizers), never pytest.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

from tgpo.lab.tokenizer import char_tokenizer

__all__ = [
    "CHARS",
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "WORDS",
    "build_model",
    "build_tokenizer",
    "save_model",
    "save_pair",
]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")
#: One token for ``\boxed{`` (as in the lab's tokenizer), then every printable ASCII character and a newline.
WORDS = ("\\boxed{",)
CHARS = tuple(c for c in string.printable if c not in "\t\r\x0b\x0c")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(chat_template: bool = True, extra_tokens: Sequence[str] = (), chars: Sequence[str] = CHARS):
    """The tiny tokenizer: ids ``SPECIAL_TOKENS + WORDS + chars + extra_tokens``.

    ``extra_tokens`` (e.g. ``<think>``) are appended at the end and matched whole; pass another ``chars`` order to
    build a tokenizer whose id space differs (vocabulary-mismatch tests). eos = pad = ``<|endoftext|>``.
    """
    return char_tokenizer(
        [*SPECIAL_TOKENS, *WORDS, *chars, *extra_tokens],
        SPECIAL_TOKENS,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        extra_special_tokens=("<|im_start|>", "<|im_end|>"),
        chat_template=CHAT_TEMPLATE if chat_template else None,
    )


def build_model(tokenizer, hidden: int = 32, layers: int = 1, seed: int = 0, vocab_size: int | None = None,
                max_positions: int = 512, tie_word_embeddings: bool = True):
    """A tiny ``Qwen2ForCausalLM`` (float32, 2 attention heads) whose vocabulary covers ``tokenizer``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    return model


def save_model(path: str | Path, tokenizer, **model_kwargs) -> Path:
    """:func:`build_model` saved with ``tokenizer`` in ``path``."""
    path = Path(path)
    build_model(tokenizer, **model_kwargs).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_pair(root: str | Path, chat_template: bool = True, teacher_hidden: int = 32, teacher_layers: int = 1):
    """Write ``root/student`` and ``root/teacher`` (same tokenizer, different seeds); return both paths."""
    root = Path(root)
    tok = build_tokenizer(chat_template=chat_template)
    student = save_model(root / "student", tok, hidden=32, layers=1, seed=0)
    teacher = save_model(root / "teacher", tok, hidden=teacher_hidden, layers=teacher_layers, seed=1)
    return student, teacher
