"""The lab's shared character-level tokenizer (one id per character, ``\\boxed{`` as one token).

Built with the ``tokenizers`` library and wrapped as a ``PreTrainedTokenizerFast`` (transformers' tokenizers
backend), so that ``AutoTokenizer.from_pretrained(model_dir)`` gives back exactly the same ids. No BOS/EOS is
added on encoding (like Qwen base models): TRL, lm-eval and the lab's own code all see the raw prompt ids.
"""

from __future__ import annotations

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
BOXED = "\\boxed{"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
CHARS = tuple("0123456789+-*=;.,:{}()\\ \n") + tuple("abcdefghijklmnopqrstuvwxyz") + tuple("AQ?")
VOCAB = SPECIAL_TOKENS + (BOXED,) + CHARS
MODEL_MAX_LENGTH = 256


def build_tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(VOCAB)}
    # BPE without merges = one token per character; unknown characters map to <unk>.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.decoder = decoders.Fuse()  # concatenate: no spaces inserted between characters
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(BOXED, special=False, normalized=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="left",
    )


def special_ids() -> dict[str, int]:
    return {
        "pad_token_id": VOCAB.index(PAD),
        "bos_token_id": VOCAB.index(BOS),
        "eos_token_id": VOCAB.index(EOS),
    }
