"""Regime statistics (issue 20, item 1): the lab's position labeller and first-error finder (tgpo.lab.positions), the
RL split specs (tgpo.lab.world), and the arithmetic of python -m repro.regime (group shares, clustered intervals,
per-class disagreement, first-error statistics) on hand-made rollouts — no model runs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from repro import regime, stats
from tgpo.lab import positions as P
from tgpo.lab import world as W
from tgpo.lab.tokenizer import BOXED, EOS


def classes_of(text: str) -> list[tuple[str, str]]:
    tokens = P.completion_tokens(text, eos=True)
    return list(zip(tokens, P.position_classes(tokens)))


def test_style_s_step_is_labelled_by_its_grammar():
    got = classes_of("3+7=10;10+5=15;\\boxed{15}")
    assert got[:7] == [("3", "order"), ("+", "connective"), ("7", "operand"), ("=", "connective"),
                       ("1", "result"), ("0", "result"), (";", "step_end")]
    # the running total that opens the next step: its first digit is the step start, the rest an operand
    assert got[7:9] == [("1", "order"), ("0", "operand")]
    assert got[-5:] == [(BOXED, "box"), ("1", "answer"), ("5", "answer"), ("}", "box"), (EOS, "end")]


def test_style_t_step_is_labelled_by_its_grammar():
    got = classes_of("7 plus 3 is 10. \\boxed{10}")
    labels = [c for _, c in got]
    assert labels[:16] == ["order", "separator", "connective", "connective", "connective", "connective", "separator",
                           "operand", "separator", "connective", "connective", "separator", "result", "result",
                           "step_end", "separator"]
    assert labels[16:] == ["box", "answer", "answer", "box", "end"]


def test_unknown_characters_are_other_and_every_class_has_a_group():
    assert classes_of("3?7")[1] == ("?", "other")
    assert set(P.CLASSES) == set(P.GROUP_OF)
    assert P.GROUP_OF["order"] == "style" and P.GROUP_OF["result"] == "content" and P.GROUP_OF["box"] == "structure"


def test_completion_tokens_match_the_lab_tokenizer():
    from tgpo.lab.tokenizer import VOCAB, build_tokenizer

    tok = build_tokenizer()
    text = "7 plus 3 is 10. 10+5=15;\\boxed{15}"
    assert P.completion_tokens(text) == [VOCAB[i] for i in tok(text, add_special_tokens=False)["input_ids"]]


def test_first_error_finds_the_first_wrong_token_and_the_correct_ones():
    ops = [3, 7, 5]
    good = P.completion_tokens(W.solution(ops, "ST"), eos=True)
    assert P.first_error(ops, good) is None
    wrong_sum = P.completion_tokens("3+7=11;", eos=False)
    assert P.first_error(ops, wrong_sum) == (5, frozenset({"0"}))
    # at the first token both styles are open: 3 (S: 3+7) or 7 (T: 7 plus 3)
    assert P.first_error(ops, ["5"]) == (0, frozenset({"3", "7"}))
    # a correct prefix (e.g. a rollout cut by the completion cap) has no first error
    assert P.first_error(ops, good[:6]) is None
    assert P.first_error(ops, good[:-1] + ["9"]) == (len(good) - 1, frozenset({EOS}))
    assert P.operands_of("3+7+5=") == ops


def test_rl_split_specs():
    assert W.parse_rl_split("k4+k5") == (4, 5)
    for bad in ("k4+k4", "4", "k9", "k4+", ""):
        with pytest.raises(ValueError):
            W.parse_rl_split(bad)
    assert W.rl_split("k4", n=5, seed=3) == W.make_split("rl_train", n=5, seed=3)
    mixed = W.rl_split("k4+k5", n=7, seed=0)
    assert sorted(r["k"] for r in mixed) == [4, 4, 4, 4, 5, 5, 5]
    assert all(not W.is_heldout(P.operands_of(r["prompt"])) for r in W.rl_split("k6", n=20))


def test_group_outcomes():
    wrong, right = regime.group_outcomes([0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0], 3)
    assert wrong == [True, False, False, True] and right == [False, True, False, False]
    with pytest.raises(ValueError):
        regime.group_outcomes([0, 1], 3)


def test_cluster_ratio_interval():
    x = [1.0, 0.0, 1.0, 1.0, 0.0]
    a, b = stats.cluster_ratio_interval(x, [1] * 5), stats.t_interval(x)
    assert a.mean == pytest.approx(b.mean) and a.half == pytest.approx(b.half)
    c = stats.cluster_ratio_interval([3, 0, 1], [4, 2, 1])
    assert c.mean == pytest.approx(4 / 7)
    residuals = np.array([3, 0, 1]) - 4 / 7 * np.array([4, 2, 1])
    assert c.se == pytest.approx(np.sqrt(1.5 * (residuals**2).sum()) / 7)


def _rollout(prompt, text, group, teacher=None, student=None, logp=None):
    tokens = P.completion_tokens(text, eos=True)
    n = len(tokens)
    return {"prompt": prompt, "answer": W.answer_of(P.operands_of(prompt)), "group": group, "text": text,
            "tokens": tokens, "classes": P.position_classes(tokens), "correct": W.is_correct(text, W.answer_of(P.operands_of(prompt))),
            "teacher_argmax": teacher or list(tokens), "student_argmax": student or list(tokens),
            "logp_teacher_token": logp or [0.0] * n, "kl_teacher_student": [0.5] * n, "kl_student_teacher": [1.0] * n}


def test_disagreement_by_class_on_hand_made_rollouts():
    a = _rollout("3+7=", "3+7=10;\\boxed{10}", 0)
    a["teacher_argmax"][0] = "7"  # the teacher would start with the other operand
    a["logp_teacher_token"][0] = np.log(0.01)
    b = _rollout("3+7=", "3+7=10;\\boxed{10}", 1)
    b["student_argmax"][0] = "9"  # the student's own argmax plays no part in disagreement with the sampled token
    rows = {(r["statistic"], r["cls"]): r for r in regime.disagreement_rows([a, b])}
    assert rows[("teacher argmax != sampled (%)", "order")]["value"] == pytest.approx(50.0)
    assert rows[("teacher argmax != sampled (%)", "content")]["value"] == 0.0
    assert rows[("teacher argmax != sampled (%)", "all")]["value"] == pytest.approx(100 / (2 * len(a["tokens"])))
    assert rows[("student p(teacher argmax), mean", "order")]["value"] == pytest.approx(0.505)
    assert rows[("student p(teacher argmax), median", "order")]["value"] == pytest.approx(0.505)
    assert rows[("KL(student||teacher) per token", "style")]["value"] == pytest.approx(1.0)
    shares = [r["value"] for r in regime.disagreement_rows([a, b])
              if r["statistic"] == "share of positions (%)" and r["cls"] in P.GROUPS]
    assert sum(shares) == pytest.approx(100.0)


def test_first_errors_skip_correct_and_truncated_rollouts():
    right = _rollout("3+7=", "3+7=10;\\boxed{10}", 0)
    wrong = _rollout("3+7=", "3+7=11;\\boxed{11}", 0)
    cut = _rollout("3+7=", "3+7=11;\\boxed{11}", 1)
    cut["tokens"], cut["correct"] = P.completion_tokens("3+7=1"), False
    found = regime.first_errors([right, wrong, cut])
    assert [(r is wrong, i, allowed) for r, i, allowed in found] == [(True, 5, frozenset({"0"}))]


@pytest.mark.parametrize("argv, names", [(["--rl-split", "k9"], "--rl-split"),
                                         (["--rl-split", "k4", "--teacher", "/no/such/teacher"], "--teacher"),
                                         (["--guidance-only", "--guidance-steps", "90"], "guidance weight"),
                                         (["--guidance-only", "--guidance-steps", "0"], "--guidance-only")])
def test_bad_input_stops_in_one_line_before_anything_is_written(tmp_path, argv, names):
    from repro.paths import REPO

    result = subprocess.run([sys.executable, "-m", "repro.regime", *argv, "--output-dir", str(tmp_path / "out")],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and names in result.stderr
    assert not (tmp_path / "out").exists()


def test_first_error_rows_arithmetic(monkeypatch):
    """Teacher/student argmax at the first error, the substituted prefixes handed to the student, and the shares."""
    wrong1 = _rollout("3+7=", "3+7=11;\\boxed{11}", 0)
    wrong1["teacher_argmax"][5], wrong1["student_argmax"][5] = "0", "1"  # teacher right, student wrong
    right1 = _rollout("3+7=", "3+7=10;\\boxed{10}", 0)
    right1["teacher_argmax"][0] = "7"  # disagrees at the first step start
    wrong2 = _rollout("3+7=", "3+7=12;\\boxed{12}", 1)
    wrong2["teacher_argmax"][5], wrong2["student_argmax"][5] = "0", "0"  # both right
    right2 = _rollout("3+7=", "3+7=10;\\boxed{10}", 1)
    answers = iter([[True, False], [False, False], [False]])  # teacher fix, student fix, correct rollouts kept
    seen = []
    monkeypatch.setattr(regime, "_continue", lambda student, tok, items, prefixes, cap: seen.append(prefixes) or next(answers))
    rows = {r["statistic"]: r for r in regime.first_error_rows(None, None, [wrong1, right1, wrong2, right2], cap=64)
            if r["cls"] in ("", "result")}
    assert seen[0] == [list("3+7=1") + ["0"]] * 2 and seen[1] == [list("3+7=1")] * 2
    assert seen[2] == [["7"]]
    assert rows["teacher argmax correct (%)"]["value"] == 100 and rows["student argmax correct (%)"]["value"] == 50
    assert rows["teacher token + student greedy fixes (%)"]["value"] == 50
    assert rows["student greedy from the prefix fixes (%)"]["value"] == 0
    assert rows["where (% of first errors)"]["value"] == 100
    assert rows["disagree with the teacher at a step start (%)"]["value"] == 50
    assert rows["still correct after the teacher's step-start token (%)"]["value"] == 0
    assert rows["sampled accuracy (%)"]["value"] == 50


def test_positions_are_scored_alike_whatever_else_shares_the_batch():
    """A k=4 and a k=5 rollout of the same total length (prompt 8 + 12 tokens, prompt 10 + 10 tokens) get the same
    per-token scores together as alone (a batch keyed on the total length alone read the second one's completion
    from the first one's prompt length)."""
    import torch

    from tgpo.lab import config as C
    from tgpo.lab.models import new_model
    from tgpo.lab.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    student, teacher = (new_model(C.MODELS[C.TINY_TEST], tok).eval() for _ in range(2))

    def rollout(prompt, text):
        tokens = P.completion_tokens(text)
        return {"prompt": prompt, "tokens": tokens}

    pair = [rollout("3+7+5+8=", "3+7=10;10+5="), rollout("3+7+5+8+2=", "3+7=10+5+8")]
    assert len(pair[0]["tokens"]) + 8 == len(pair[1]["tokens"]) + 10
    together = [dict(r) for r in pair]
    regime.score_positions(student, teacher, tok, together)
    for r, both in zip(pair, together):
        alone = [dict(r)]
        regime.score_positions(student, teacher, tok, alone)
        assert len(both["teacher_argmax"]) == len(r["tokens"])
        assert both["teacher_argmax"] == alone[0]["teacher_argmax"]
        assert both["kl_teacher_student"] == pytest.approx(alone[0]["kl_teacher_student"], abs=1e-5)
