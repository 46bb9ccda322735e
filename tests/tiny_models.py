"""Builders for tiny, offline test models: a character-level tokenizer and Qwen2 configs (no Hub access).

Reusable by any test: ``build_tokenizer()``, ``build_model(tokenizer, hidden=...)`` and ``save_pair(dir)``, which
writes a student and a same-vocabulary teacher folder that ``from_pretrained`` loads exactly.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
#: One token for ``\boxed{`` (as in the lab's tokenizer), then every printable ASCII character and a newline.
MULTI_CHAR = ["\\boxed{"]
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(chat_template: bool = True, extra_tokens: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A character-level ``PreTrainedTokenizerFast``; ``extra_tokens`` are appended at the end of the vocabulary."""
    pieces = SPECIAL_TOKENS + MULTI_CHAR + CHARS + list(extra_tokens or [])
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(pieces))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\\boxed\{|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        padding_side="left",
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, hidden: int = 32, layers: int = 1, seed: int = 0, vocab_size: int | None = None):
    """A tiny ``Qwen2ForCausalLM`` (float32) whose vocabulary covers ``tokenizer``."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
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
