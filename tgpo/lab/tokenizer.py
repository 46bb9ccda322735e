"""Character-level tokenizers: :func:`char_tokenizer` (the one builder) and the lab's tokenizer built with it.

One id per character, plus whole-string tokens (``\\boxed{``) matched before the characters. Built with the
``tokenizers`` library and wrapped as a ``PreTrainedTokenizerFast`` (transformers' tokenizers backend), so that
``AutoTokenizer.from_pretrained(model_dir)`` gives back exactly the same ids. No BOS/EOS is added on encoding
(like Qwen base models): TRL, lm-eval and the lab's own code all see the raw prompt ids.

The lab's ids (:data:`VOCAB` order) are fixed: the stored lab models (``tgpo/lab/zoo/``) were trained on them.
The test suite's and the examples' tiny tokenizers (:mod:`tgpo.testing`) are :func:`char_tokenizer` with another
vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
BOXED = "\\boxed{"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
CHARS = tuple("0123456789+-*=;.,:{}()\\ \n") + tuple("abcdefghijklmnopqrstuvwxyz") + tuple("AQ?")
VOCAB = SPECIAL_TOKENS + (BOXED,) + CHARS
MODEL_MAX_LENGTH = 256


def char_tokenizer(
    vocab: Sequence[str],
    special_tokens: Sequence[str],
    *,
    eos_token: str,
    pad_token: str,
    unk_token: str,
    bos_token: str | None = None,
    extra_special_tokens: Sequence[str] = (),
    model_max_length: int | None = None,
    chat_template: str | None = None,
):
    """A ``PreTrainedTokenizerFast`` whose id of ``vocab[i]`` is ``i``.

    Args:
        vocab: the tokens in id order (a repeated entry keeps its first id). Single characters are the model's
            vocabulary; any other character encodes as ``unk_token``. Longer entries that are not special
            (``\\boxed{``, ``<think>``) are matched whole, before the text is split into characters.
        special_tokens: entries of ``vocab`` that are special (never split, dropped by ``skip_special_tokens``);
            they must include ``eos_token``, ``pad_token``, ``unk_token`` and ``bos_token`` if given.
        extra_special_tokens: special tokens that are not eos/pad/unk/bos (e.g. chat markers), registered as
            the wrapper's additional special tokens.
        model_max_length, chat_template: passed to the wrapper (``None``: transformers' default / no template).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    ids = {t: i for i, t in enumerate(dict.fromkeys(vocab))}
    missing = [t for t in (*special_tokens, eos_token, pad_token, unk_token, bos_token) if t is not None and t not in ids]
    if missing:
        raise ValueError(f"special tokens {missing} are not in the vocabulary")
    # BPE without merges = one token per character; unknown characters map to unk_token.
    tok = Tokenizer(models.BPE(vocab=ids, merges=[], unk_token=unk_token))
    tok.decoder = decoders.Fuse()  # concatenate: no spaces inserted between characters
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special_tokens])
    words = [t for t in ids if len(t) > 1 and t not in special_tokens]
    if words:
        tok.add_tokens([AddedToken(w, special=False, normalized=False) for w in words])
    kwargs = {"bos_token": bos_token} if bos_token is not None else {}
    if extra_special_tokens:
        kwargs["additional_special_tokens"] = list(extra_special_tokens)
    if model_max_length is not None:
        kwargs["model_max_length"] = model_max_length
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        clean_up_tokenization_spaces=False,
        padding_side="left",
        **kwargs,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_tokenizer():
    """The lab's tokenizer: ids :data:`VOCAB` (``<pad> <bos> <eos> <unk> \\boxed{`` then :data:`CHARS`)."""
    return char_tokenizer(VOCAB, SPECIAL_TOKENS, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                          model_max_length=MODEL_MAX_LENGTH)


def special_ids() -> dict[str, int]:
    return {
        "pad_token_id": VOCAB.index(PAD),
        "bos_token_id": VOCAB.index(BOS),
        "eos_token_id": VOCAB.index(EOS),
    }
