"""The teacher pass, the vocabulary check, tokenizer loading and `tgpo align` (tiny models built here)."""

import pytest
import torch

from tgpo.teacher import (
    LocalTeacher,
    VocabularyMismatchError,
    check_vocabularies,
    head_scores,
    load_tokenizer,
    teacher_scores,
)
from tgpo.testing import CHARS, build_model, build_tokenizer, save_model


def _batch(tok, B=6, P=5, T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(4, len(tok), (B, P), generator=g)
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    prompt_mask[0, :2] = 0  # left padding
    completion_ids = torch.randint(4, len(tok), (B, T), generator=g)
    completion_mask = torch.ones(B, T, dtype=torch.long)
    completion_mask[1, 4:] = 0  # right padding
    completion_mask[2, 1:] = 0
    return prompt_ids, prompt_mask, completion_ids, completion_mask


def _naive(teacher, batch, student_vocab, temperature=1.0):
    """The teacher's full logits, the argmax over the student's ids and ``log_softmax(logits / temperature)``."""
    prompt_ids, prompt_mask, completion_ids, completion_mask = batch
    T = completion_ids.size(1)
    with torch.no_grad():
        logits = teacher(
            input_ids=torch.cat([prompt_ids, completion_ids], 1), attention_mask=torch.cat([prompt_mask, completion_mask], 1)
        ).logits[:, -T - 1 : -1].float()
    argmax = logits[..., :student_vocab].argmax(-1)
    logp = torch.log_softmax(logits / temperature, -1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    return argmax, logp


def test_chunked_and_unchunked_teacher_pass_agree_and_match_full_logits():
    tok = build_tokenizer()
    teacher = build_model(tok, hidden=48, seed=3).eval()
    batch = _batch(tok)
    mask = batch[3].bool()
    whole = teacher_scores(teacher, *batch, student_vocab_size=len(tok), chunk_size=None)
    for chunk in (1, 4):
        part = teacher_scores(teacher, *batch, student_vocab_size=len(tok), chunk_size=chunk)
        assert torch.equal(whole[0][mask], part[0][mask])
        torch.testing.assert_close(whole[1][mask], part[1][mask], rtol=0, atol=1e-6)
    argmax, logp = _naive(teacher, batch, len(tok))
    assert torch.equal(whole[0][mask], argmax[mask])
    torch.testing.assert_close(whole[1][mask], logp[mask], rtol=0, atol=1e-6)
    assert (whole[1][~mask] == 0).all()


def test_position_chunked_pass_equals_unchunked():
    # 6 rows with 7, 7, 4, 1, 7, 7 real completion tokens (33 positions): tiles of 1, 5 (not dividing any row or
    # the total), 7 (one row) and 11, with row chunks of 1, 4 and all; ids >= the student's vocabulary exist.
    tok = build_tokenizer()
    teacher = build_model(tok, hidden=48, seed=5, vocab_size=len(tok) + 7).eval()
    batch = _batch(tok)
    mask = batch[3].bool()
    ref = teacher_scores(teacher, *batch, student_vocab_size=len(tok))
    for rows in (None, 1, 4):
        for tokens in (1, 5, 7, 11):
            argmax, logp = teacher_scores(teacher, *batch, student_vocab_size=len(tok), chunk_size=rows, chunk_tokens=tokens)
            assert torch.equal(argmax, ref[0]), (rows, tokens)
            torch.testing.assert_close(logp, ref[1], rtol=0, atol=1e-5)
            assert (argmax[~mask] == 0).all() and (logp[~mask] == 0).all()


def test_teacher_temperature_scales_logprobs_not_argmax():
    tok = build_tokenizer()
    teacher = build_model(tok, hidden=48, seed=6).eval()
    batch = _batch(tok)
    mask = batch[3].bool()
    for tau in (0.6, 1.7):
        argmax, logp = LocalTeacher(teacher, len(tok), chunk_size=4, chunk_tokens=5, temperature=tau).score(*batch)
        ref_argmax, ref_logp = _naive(teacher, batch, len(tok), temperature=tau)
        assert torch.equal(argmax[mask], ref_argmax[mask])
        torch.testing.assert_close(logp[mask], ref_logp[mask], rtol=0, atol=1e-5)
        # and it is not the temperature-1 log-prob (the test would pass with the temperature ignored otherwise)
        assert (logp[mask] - _naive(teacher, batch, len(tok))[1][mask]).abs().max() > 1e-2


def test_head_scores_matches_full_logits_with_bias_softcap_and_restricted_argmax():
    g = torch.Generator().manual_seed(0)
    N, H, V, limit = 23, 16, 50, 31
    hidden, weight, bias = torch.randn(N, H, generator=g), torch.randn(V, H, generator=g), torch.randn(V, generator=g)
    targets = torch.randint(0, V, (N,), generator=g)
    logits = torch.nn.functional.linear(hidden, weight, bias)
    for cap in (None, 1.5):
        z = logits if cap is None else cap * torch.tanh(logits / cap)
        for tau in (1.0, 0.6):
            ref = torch.log_softmax(z / tau, -1).gather(1, targets[:, None]).squeeze(1)
            for chunk in (None, 4, 23, 100):
                argmax, logp = head_scores(hidden, weight, bias, targets, limit, chunk, tau, cap)
                assert torch.equal(argmax, z[:, :limit].argmax(-1))
                torch.testing.assert_close(logp, ref, rtol=0, atol=1e-5)
    assert (logits.argmax(-1) >= limit).any()  # the restriction mattered


def test_untied_head_and_softcapped_teacher_match_their_own_forward():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tok = build_tokenizer()
    untied = build_model(tok, hidden=32, seed=7, tie_word_embeddings=False).eval()
    assert untied.get_output_embeddings().weight.data_ptr() != untied.get_input_embeddings().weight.data_ptr()
    torch.manual_seed(8)
    gemma = Gemma2ForCausalLM(Gemma2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, max_position_embeddings=64, final_logit_softcapping=0.5,
        pad_token_id=tok.pad_token_id)).eval()
    batch = _batch(tok)
    mask = batch[3].bool()
    for teacher in (untied, gemma):
        argmax, logp = teacher_scores(teacher, *batch, student_vocab_size=len(tok), chunk_tokens=5)
        ref_argmax, ref_logp = _naive(teacher, batch, len(tok))
        assert torch.equal(argmax[mask], ref_argmax[mask])
        torch.testing.assert_close(logp[mask], ref_logp[mask], rtol=0, atol=1e-5)
    # a soft cap of 0.5 bounds the logits to +-0.5, so the log-probs sit near -log(V): it was applied
    assert (logp[mask] + torch.log(torch.tensor(float(len(tok))))).abs().max() < 1.0


def test_teacher_with_scaled_logits_is_refused():
    tok = build_tokenizer()
    teacher = build_model(tok)
    teacher.config.logits_scaling = 4.0
    with pytest.raises(NotImplementedError, match="logits_scaling"):
        LocalTeacher(teacher, len(tok))


def test_teacher_argmax_is_restricted_to_student_ids():
    tok = build_tokenizer()
    teacher = build_model(tok, hidden=32, seed=4, vocab_size=len(tok) + 20).eval()
    with torch.no_grad():  # make the ids the student cannot emit the teacher's favourites everywhere
        teacher.get_output_embeddings().weight[len(tok) :] *= 0
        teacher.get_output_embeddings().weight[len(tok) :] += 5.0
    batch = _batch(tok)
    unrestricted = _naive(teacher, batch, len(tok) + 20)[0]
    assert (unrestricted >= len(tok)).any()
    argmax, logp = LocalTeacher(teacher, student_vocab_size=len(tok), chunk_size=2).score(*batch)
    assert (argmax < len(tok)).all()
    assert torch.equal(argmax[batch[3].bool()], _naive(teacher, batch, len(tok))[0][batch[3].bool()])


def test_vocabulary_check_names_first_mismatching_ids():
    student = build_tokenizer()
    check_vocabularies(student, build_tokenizer(), len(student))
    vocab = student.get_vocab()
    a, b = vocab["a"], vocab["b"]
    # A teacher whose id space differs: built from a character list with "a" and "b" swapped.
    chars = list(CHARS)
    i, j = chars.index("a"), chars.index("b")
    chars[i], chars[j] = chars[j], chars[i]
    other = build_tokenizer(chars=chars)
    with pytest.raises(VocabularyMismatchError, match=rf"id {min(a, b)}: student '{'ab'[a > b]}' vs teacher"):
        check_vocabularies(student, other, len(student))
    with pytest.raises(VocabularyMismatchError, match="embedding has 50 rows"):
        check_vocabularies(student, student, 50)
    shorter = build_tokenizer()
    bigger = build_tokenizer(extra_tokens=["<think>"])
    with pytest.raises(VocabularyMismatchError, match=rf"id {len(shorter)}: student '<think>' vs teacher None"):
        check_vocabularies(bigger, shorter, len(bigger))


def test_load_tokenizer_keeps_custom_tokenizer_exact(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    text = "\\boxed{12} a+b"
    assert load_tokenizer(tmp_path)(text)["input_ids"] == tok(text)["input_ids"]
    with pytest.raises(FileNotFoundError, match="nope"):
        load_tokenizer(tmp_path / "nope")


def test_align_reproduces_authors_alignment(tmp_path):
    from tgpo.align import align_teacher_to_student

    student_tok = build_tokenizer(extra_tokens=["<think>", "</think>"])
    teacher_tok = build_tokenizer()
    teacher_tok.eos_token = "<|im_end|>"  # the teacher's own special tokens differ
    student = save_model(tmp_path / "s", student_tok, vocab_size=len(student_tok))
    teacher = save_model(tmp_path / "t", teacher_tok, hidden=48, vocab_size=len(teacher_tok))
    paths = align_teacher_to_student(teacher, student, tmp_path / "aligned")
    s_tok, t_tok = load_tokenizer(paths["student"]), load_tokenizer(paths["teacher"])
    from transformers import AutoModelForCausalLM

    t_model = AutoModelForCausalLM.from_pretrained(paths["teacher"])
    s_model = AutoModelForCausalLM.from_pretrained(paths["student"])
    check_vocabularies(s_tok, t_tok, t_model.get_input_embeddings().weight.shape[0])
    assert t_tok.eos_token == s_tok.eos_token == "<|endoftext|>"
    assert t_model.get_input_embeddings().weight.shape[0] == s_model.get_input_embeddings().weight.shape[0] == len(s_tok)
    assert t_model.generation_config.eos_token_id == s_tok.eos_token_id


def test_align_refuses_different_id_spaces(tmp_path, capsys):
    from tgpo.cli import main

    student = save_model(tmp_path / "s", build_tokenizer())
    teacher = save_model(tmp_path / "t", build_tokenizer(chars=CHARS[::-1]))
    rc = main(["align", "--teacher", str(teacher), "--student", str(student), "--output-dir", str(tmp_path / "o")])
    assert rc == 2
    assert "disagree" in capsys.readouterr().err
