"""The one character-tokenizer builder: the lab's ids are those its stored models were trained on; the tiny
test tokenizer's id layout and whole-word tokens."""

import json

import pytest

from tgpo.lab.tokenizer import VOCAB, build_tokenizer, char_tokenizer
from tgpo.testing import CHARS, SPECIAL_TOKENS, WORDS, save_model
from tgpo.testing import build_tokenizer as build_tiny_tokenizer


def test_lab_tokenizer_is_the_one_its_stored_models_were_trained_with():
    from tgpo.lab import default_models_dir

    stored = sorted(p.parent for p in default_models_dir().glob("*/tokenizer.json"))
    assert stored, f"no stored lab model in {default_models_dir()}"
    tok = build_tokenizer()
    built = json.loads(tok.backend_tokenizer.to_str())
    assert tok.get_vocab() == {t: i for i, t in enumerate(VOCAB)}
    for folder in stored:
        assert json.loads((folder / "tokenizer.json").read_text()) == built, folder.name
        cfg = json.loads((folder / "tokenizer_config.json").read_text())
        assert (cfg["bos_token"], cfg["eos_token"], cfg["pad_token"], cfg["unk_token"]) == (
            tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token)
    text = "Q: 3+4+\\boxed{7}; ?"
    assert tok.convert_ids_to_tokens(tok(text)["input_ids"])[:4] == ["Q", ":", " ", "3"]
    assert VOCAB.index("\\boxed{") in tok(text)["input_ids"]


def test_tiny_tokenizer_ids_and_whole_tokens():
    tok = build_tiny_tokenizer(extra_tokens=["<think>"])
    order = [*SPECIAL_TOKENS, *WORDS, *CHARS, "<think>"]
    assert tok.get_vocab() == {t: i for i, t in enumerate(order)}
    ids = tok("<think>\\boxed{1}<|im_end|>\t")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<think>", "\\boxed{", "1", "}", "<|im_end|>", "<unk>"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\\boxed{1}"
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and tok.padding_side == "left"
    swapped = build_tiny_tokenizer(chars=CHARS[::-1])
    assert swapped.convert_tokens_to_ids("a") != tok.convert_tokens_to_ids("a")


def test_tiny_tokenizer_round_trips_through_a_model_folder(tmp_path):
    from tgpo.teacher import load_tokenizer

    tok = build_tiny_tokenizer()
    save_model(tmp_path, tok)
    text = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert load_tokenizer(tmp_path)(text)["input_ids"] == tok(text)["input_ids"]


def test_special_tokens_must_be_in_the_vocabulary():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        char_tokenizer(["a", "b"], ["<eos>"], eos_token="<eos>", pad_token="<eos>", unk_token="<eos>")
