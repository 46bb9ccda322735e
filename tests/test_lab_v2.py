"""World v2 of the lab (issue 20): the style-only style U, long steps that carry the operands still to add, their
position classes and grading, the v2 model registry, the regime script's length statistics — and the guard that none
of it moves world v1 (its splits, its pre-training streams, its models' build hashes). No model runs."""

from __future__ import annotations

import hashlib
import json
import random
import re

import numpy as np
import pytest

from repro import regime, stats
from tgpo.lab import config as C
from tgpo.lab import positions as P
from tgpo.lab import world as W

V2 = C.WORLD_V2


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- world v1 is unchanged
#: The config hashes stored in the shipped v1 models' build_info.json (tgpo/lab/zoo/*): golden values. A change to
#: what a v1 model's hash covers would make `tgpo lab build` rebuild it and `tgpo lab list` call it stale.
V1_HASHES = {"student": "3c27c17f047eae71", "student_small": "12741defd37f0c54", "teacher_in": "9826354399364ed5",
             "teacher_cross": "a49fa0052c33f7aa", "teacher_t0.5": "dc4e176d89fd1bf3"}


@pytest.mark.parametrize("name", sorted(V1_HASHES))
def test_v1_build_hashes_are_unchanged(name):
    from tgpo.lab import models as M

    cfg = C.get_model_config(name)
    assert C.config_hash(cfg) == V1_HASHES[name]
    assert cfg.world == "v1" and M.is_built(cfg, M.default_models_dir())


def test_v1_splits_and_pretraining_streams_are_unchanged():
    """Golden digests taken before world v2 was added: the eval splits, RL splits and the examples v1 recipes draw."""
    splits = [W.make_split(s) for s in ("id", "hard", "ood")] + [W.make_split("rl_train", n=300, seed=0),
                                                                  W.rl_split("k4+k5", n=50)]
    assert _digest(splits) == "6c8425ab75ed1d66"
    golden = {"student": "9f46bf98a2c8eece", "teacher_cross": "7f9956baeae66ba5", "teacher_t0.5": "00013df4bd9014f7"}
    for name, digest in golden.items():
        pc, rng = C.get_model_config(name).pretrain, random.Random("x")
        drawn = [W.sample_pretrain_example(rng, pc.k_weights, pc.t_share, C.WORLD, pc.two_digit_share, pc.two_digit_ks,
                                           pc.u_share, pc.long_share) for _ in range(500)]
        assert _digest(drawn) == digest, name


def test_v1_grammar_has_no_style_u_and_no_long_steps():
    ops = [3, 7, 5]
    assert P.first_error(ops, P.completion_tokens(W.solution(ops, "U"), eos=True)) == (1, frozenset({"+"}))
    long = P.completion_tokens(W.solution(ops, "S", long=True), eos=True)
    assert P.first_error(ops, long) == (6, frozenset({";"}))


# --------------------------------------------------------------------------- style U: style-only
def test_style_u_keeps_the_students_operand_order_and_digits():
    ops = [3, 7, 5, 8]
    s, u, t = (W.solution(ops, st) for st in "SUT")
    assert u == "3 and 7 gives 10, 10 and 5 gives 15, 15 and 8 gives 23, \\boxed{23}"
    digits = lambda text: re.sub(r"\D", "", text)  # noqa: E731
    assert digits(u) == digits(s) and digits(t) != digits(s)  # T moves content, U does not
    assert W.is_correct(u, "23") and not W.is_correct(u, "24")
    assert [u[i] for i in W.step_start_offsets(u)] == ["3", "1", "1"]


def test_style_u_differs_from_s_only_on_style_and_structure_positions():
    ops = [3, 7, 5, 8]
    s_tokens, u_tokens = (P.completion_tokens(W.solution(ops, st), eos=True) for st in "SU")
    s_classes, u_classes = P.position_classes(s_tokens), P.position_classes(u_tokens)
    content = lambda toks, cls: [(t, c) for t, c in zip(toks, cls) if P.GROUP_OF[c] == "content" or c == "order"]  # noqa: E731
    assert content(s_tokens, s_classes) == content(u_tokens, u_classes)
    words = [c for t, c in zip(u_tokens, u_classes) if t.isalpha()]
    assert set(words) == {"connective"} and u_classes[u_tokens.index(",")] == "step_end"
    assert "other" not in u_classes


def test_sampled_styles_follow_the_shares():
    rng = random.Random(0)
    styles = W.sample_styles(rng, 20_000, t_share=0.0, u_share=0.5)
    assert set(styles) == {"S", "U"} and styles.count("U") / len(styles) == pytest.approx(0.5, abs=0.02)
    assert set(W.sample_styles(rng, 50, t_share=0.9, u_share=0.0)) <= {"S", "T"}


# --------------------------------------------------------------------------- long steps
@pytest.mark.parametrize("style", "STU")
def test_long_steps_carry_the_operands_still_to_add_and_grade_right(style):
    rng = random.Random(1)
    for _ in range(200):
        ops = W.sample_operands(rng, rng.randint(2, 6))
        text = W.solution(ops, style, long=True)
        assert W.is_correct(text, W.answer_of(ops)) and not W.is_correct(text, str(sum(ops) + 1))
        # every step's right side (its sum and what it carries) adds up to the answer: correct arithmetic
        for i, step in enumerate(re.split(W.STEP_END_PATTERN, text.split("\\boxed{")[0])[:-1]):
            right = re.split(r"=| is | gives ", step)[1]
            assert sum(map(int, right.split("+"))) == sum(ops), (text, step)
            assert [int(x) for x in right.split("+")[1:]] == ops[i + 2:]
        assert len(text) > len(W.solution(ops, style)) or len(ops) == 2  # a two-operand sum has nothing to carry


def test_long_steps_labels_and_lengths():
    tokens = P.completion_tokens("3+7=10+5+8;10+5=15+8;", eos=False)
    labels = P.position_classes(tokens)
    assert list(zip(tokens, labels))[:11] == [
        ("3", "order"), ("+", "connective"), ("7", "operand"), ("=", "connective"), ("1", "result"), ("0", "result"),
        ("+", "connective"), ("5", "carried"), ("+", "connective"), ("8", "carried"), (";", "step_end")]
    assert labels[11:] == ["order", "operand", "connective", "operand", "connective", "result", "result", "connective",
                           "carried", "step_end"]
    t_labels = P.position_classes(P.completion_tokens("7 plus 3 is 10+5. "))
    assert t_labels[-5:] == ["result", "connective", "carried", "step_end", "separator"]
    assert P.GROUP_OF["carried"] == "content"
    # the longest correct solution of the student's style (k=6, all long) fits the world's completion cap, and every
    # style's fits the eval budget
    nines = [9] * 6
    assert len(P.completion_tokens(W.solution(nines, "S", long=True), eos=True)) <= V2.completion_cap
    for style in V2.styles:
        assert len(P.completion_tokens(W.solution(nines, style, long=True), eos=True)) <= V2.max_gen_toks


def test_rambling_after_an_answer_is_graded_by_the_last_box():
    text = W.solution([3, 7, 5], "S", long=True)
    assert W.is_correct("3+7=11+5;11+5=16;\\boxed{16}" + text, "15")
    assert not W.is_correct(text + "15+1=16;\\boxed{16}", "15")


def test_first_error_in_world_v2_accepts_any_mix_of_styles_and_long_steps():
    ops = [3, 7, 5, 8]
    for styles in ("SSS", "UTS", "TUU"):
        for long in ([False] * 3, [True] * 3, [True, False, True]):
            tokens = P.completion_tokens(W.solution(ops, styles, long), eos=True)
            assert P.first_error(ops, tokens, V2) is None, (styles, long)
    # after "3+7=10" both a step end (short) and the carried operands (long) are open
    assert P.first_error(ops, P.completion_tokens("3+7=10-"), V2) == (6, frozenset({";", "+"}))
    # a wrong carried operand is an error where it is written
    assert P.first_error(ops, P.completion_tokens("3+7=10+5+9;"), V2) == (9, frozenset({"8"}))
    # at the first token: S and U start with 3, T with 7
    assert P.first_error(ops, ["5"], V2) == (0, frozenset({"3", "7"}))
    # after the answer nothing may follow
    done = P.completion_tokens(W.solution(ops, "S", True), eos=True)
    assert P.first_error(ops, done + ["1"], V2) == (len(done), frozenset())


def test_pretraining_long_share():
    rng = random.Random(0)
    drawn = [W.sample_pretrain_example(rng, ((4, 1.0),), 0.0, long_share=0.12)[1] for _ in range(3000)]
    long = [("+" in c.split(";")[0].split("=")[1]) for c in drawn]
    assert np.mean(long) == pytest.approx(0.12, abs=0.02)
    assert all(W.is_correct(c, str(sum(map(int, p.rstrip("=").split("+")))))
               for p, c in (W.sample_pretrain_example(rng, ((5, 1.0),), 0.9, long_share=1.0) for _ in range(50)))


def test_pretraining_read_short_steps_are_short_untrained_and_never_last():
    """A reading teacher's trace: its untrained steps are short S steps (the student's form), the steps it is trained on
    stay long, the last step is always trained, and the joined trace is a correct solution."""
    rng, untrained, steps = random.Random(0), 0, 0
    for _ in range(400):
        prompt, segments = W.sample_pretrain_segments(rng, ((5, 1.0),), 0.9, long_share=1.0, read_short_share=0.5)
        ops = P.operands_of(prompt)
        *step_segments, (boxed, boxed_trained) = segments
        assert boxed.startswith("\\boxed{") and boxed_trained and step_segments[-1][1]
        for i, (text, trained) in enumerate(step_segments[:-1]):
            if trained:  # a trained step carries the operands still to add
                assert re.sub(W.STEP_END_PATTERN + "$", "", text).endswith("".join(f"+{x}" for x in ops[i + 2:])), text
            else:
                assert re.fullmatch(r"\d+\+\d+=\d+;", text), text
        steps += len(step_segments) - 1
        untrained += sum(not t for _, t in step_segments)
        assert W.is_correct("".join(t for t, _ in segments), str(sum(ops)))
    assert untrained / steps == pytest.approx(0.5, abs=0.05)


def test_pretraining_batch_masks_exactly_the_read_steps():
    """The pre-training batch's labels: the prompt and the read steps are masked, the trained steps and EOS are not."""
    from tgpo.lab import models as M
    from tgpo.lab.tokenizer import build_tokenizer

    tok, pc = build_tokenizer(), C.get_model_config(C.V2_TEACHER_CROSS_READ).pretrain
    ids, mask, labels = M._batch(random.Random(3), tok, pc, V2)
    rng, n_read = random.Random(3), 0
    for row in range(ids.shape[0]):  # the same draws, in order
        prompt, segments = W.sample_pretrain_segments(rng, pc.k_weights, pc.t_share, V2, pc.two_digit_share,
                                                      pc.two_digit_ks, pc.u_share, pc.long_share, pc.read_short_share)
        read = "".join(t for t, trained in segments if not trained)
        n_read += bool(read)
        n_tokens = int(mask[row].sum())
        kept = labels[row, :n_tokens] != -100
        assert int((~kept).sum()) == len(prompt) + len(read)  # one token per character outside \boxed{
        assert tok.decode(labels[row, :n_tokens][kept]) == "".join(t for t, trained in segments if trained) + tok.eos_token
    assert n_read > 10


# --------------------------------------------------------------------------- v2 models
def test_v2_registry():
    names = set(C.V2_MODELS)
    # the shipped ones; others build on demand
    assert names == {C.V2_STUDENT, C.V2_TEACHER_IN, C.V2_TEACHER_CROSS, C.V2_TEACHER_IN_READ, C.V2_TEACHER_CROSS_READ}
    assert all(C.get_model_config(n).world == "v2" and C.world_of(n) is V2 for n in names)
    student = C.get_model_config(C.V2_STUDENT)
    assert student.pretrain.long_share == C.V2_STUDENT_LONG_SHARE and student.pretrain.steps == C.V2_STUDENT_STEPS
    assert student.arch == C.dataclasses.replace(C.MODELS[C.STUDENT].arch, sliding_window=C.V2_STUDENT_WINDOW)
    for name in (C.V2_TEACHER_IN, C.V2_TEACHER_CROSS, "v2_teacher_u0.9"):  # v2_teacher_u<share>: on demand
        assert C.get_model_config(name).pretrain.long_share == 1.0
    assert C.get_model_config(C.V2_TEACHER_CROSS).pretrain.t_share == 0.9
    on_demand = C.get_model_config("v2_teacher_u0.3")
    assert on_demand.pretrain.u_share == 0.3 and on_demand.pretrain.t_share == 0.0 and on_demand.world == "v2"
    hashes = {C.config_hash(C.get_model_config(n)) for n in [*names, *V1_HASHES]}
    assert len(hashes) == len(names) + len(V1_HASHES)
    assert C.world_of("student") is C.WORLD and C.world_of("/some/folder") is C.WORLD
    for bad in ("teacher_u1.5", "v2_teacher_u1.5", "teacher_x0.5"):
        with pytest.raises(KeyError):
            C.get_model_config(bad)
    with pytest.raises(ValueError):
        C.teacher_config(0.5, u_share=0.5)


def test_a_sliding_window_model_reads_only_its_window():
    """The v2 student's architecture: a token further back than the window reaches one layer's output only through
    another layer, so a one-layer model's prediction ignores it; without a window (Llama, v1) it does not."""
    import torch

    from tgpo.lab import models as M

    arch = C.ArchConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    x = torch.tensor([[5, 7, 9, 11, 13, 15, 17, 19, 21, 23]])
    y = x.clone()
    y[0, 0] = 8  # 9 tokens before the last
    for window, reads_first in ((4, False), (None, True)):
        torch.manual_seed(0)
        cfg = C.LabModelConfig("w", "test", arch=C.dataclasses.replace(arch, sliding_window=window))
        model = M.new_model(cfg).eval()
        assert type(model).__name__ == ("LlamaForCausalLM" if window is None else "MistralForCausalLM")
        with torch.no_grad():
            last = [model(input_ids=ids).logits[0, -1] for ids in (x, y)]
        assert (not torch.allclose(*last)) == reads_first, window
    # a window is hashed; no window leaves a v1 model's hash as it was (test_v1_build_hashes_are_unchanged)
    student = C.get_model_config(C.STUDENT)
    windowed = C.dataclasses.replace(student, arch=C.dataclasses.replace(student.arch, sliding_window=12))
    assert C.config_hash(windowed) != C.config_hash(student)


def test_long_form_shares_of_an_eval_folder(tmp_path):
    import json

    from repro.lab_runner import long_form_shares

    completions = ["3+7=10+5;10+5=15;\\boxed{15}", "3+7=10;10+5=15;\\boxed{15}", "7 plus 3 is 10+5. \\boxed{15}"]
    lines = [json.dumps({"doc_id": i, "resps": [[text]], "pass@1": 1.0}) for i, text in enumerate(completions)]
    (tmp_path / "samples_lab_id.jsonl").write_text("\n".join(lines) + "\n")
    assert long_form_shares(tmp_path, ["lab_id"]) == {"lab_id": pytest.approx(2 / 3)}
    assert not P.writes_long_step(W.solution([3, 7, 5, 8], "T")) and P.writes_long_step(W.solution([3, 7, 5], "U", True))


def test_style_only_teachers_for_the_shipped_student():
    """The style-only family differs from the in-family teacher by its U share alone (same recipe, seed, world)."""
    for share in C.STYLE_ONLY_LEVELS:
        u = C.get_model_config(f"teacher_u{share:g}")
        assert u.world == "v1" and u.pretrain.u_share == share and u.pretrain.long_share == 0.0
        assert C.dataclasses.replace(u.pretrain, u_share=0.0) == C.MODELS[C.TEACHER_IN].pretrain
    assert C.get_model_config("teacher_u0.3").pretrain.u_share == 0.3


@pytest.mark.parametrize("share", C.STYLE_ONLY_LEVELS)
def test_the_shipped_style_only_teachers_are_up_to_date(share):
    from tgpo.lab import models as M

    zoo, name = M.default_models_dir(), f"teacher_u{share:g}"
    assert M.is_built(C.get_model_config(name), zoo)
    assert (M.read_build_info(zoo / name) or {})["config"]["pretrain"]["u_share"] == share


def test_regime_grammar_is_the_students_world_with_what_either_model_writes():
    assert C.grammar_of("student", "teacher_cross") == C.WORLD == C.grammar_of("student", "teacher_in")
    assert C.grammar_of("student", "teacher_u0.9") == C.dataclasses.replace(C.WORLD, styles=("S", "T", "U"))
    assert C.grammar_of("student", "/a/folder") == C.WORLD
    assert C.grammar_of("student", "v2_teacher_in").long_steps and C.grammar_of("v2_student", "teacher_in") == V2


def test_v2_splits_give_luffy_the_long_teacher_trace():
    row = W.make_split("id", n=1, world=V2)[0]
    assert row["prompt"] == W.make_split("id", n=1)[0]["prompt"]
    assert row["teacher_completion"] == W.solution(P.operands_of(row["prompt"]), "T", long=True)


# --------------------------------------------------------------------------- regime: length statistics
def _rollout(prompt, text, group):
    tokens = P.completion_tokens(text, eos=True)
    return {"prompt": prompt, "group": group, "tokens": tokens, "classes": P.position_classes(tokens),
            "correct": W.is_correct(text, W.answer_of(P.operands_of(prompt)))}


def test_length_rows_split_accuracy_by_long_form():
    long_ok = "3+7=10+5;10+5=15;\\boxed{15}"
    short_ok, short_bad = "3+7=10;10+5=15;\\boxed{15}", "3+7=10;10+6=16;\\boxed{16}"
    rollouts = [_rollout("3+7+5=", t, g) for g, t in [(0, long_ok), (0, short_bad), (1, long_ok), (1, short_ok),
                                                      (2, short_bad), (2, short_bad)]]
    rows = {r["statistic"]: r for r in regime.length_rows(rollouts, cap=96)}
    assert rows["rollouts with a long step (%)"]["value"] == pytest.approx(100 * 2 / 6)
    assert rows["mean length (tokens)"]["value"] == pytest.approx(np.mean([len(r["tokens"]) for r in rollouts]))
    assert rows["sampled accuracy, rollouts with a long step (%)"]["value"] == 100
    assert rows["sampled accuracy, rollouts without (%)"]["value"] == 25
    assert rows["accuracy with a long step - without (points)"]["value"] == pytest.approx(75)
    assert rows["rollouts cut by the cap of 96 (%)"]["value"] == 0
    cut = _rollout("3+7+5=", "3+7=", 3)
    cut["tokens"] = cut["tokens"][:-1]
    assert regime.length_rows(rollouts + [cut], cap=4)[2]["value"] == pytest.approx(100 / 7)


def test_regime_first_errors_read_the_grammar_it_is_given():
    wrong = _rollout("3+7+5=", "3 and 7 gives 11, \\boxed{11}", 0)
    assert regime.first_errors([wrong])[0][1:] == (1, frozenset({"+"}))  # v1: a space after 3 is already wrong
    assert regime.first_errors([wrong], C.grammar_of("student", "teacher_u0.5"))[0][1:] == (15, frozenset({"0"}))


def test_cluster_ratio_difference():
    # one rollout of each kind per cluster: the difference of means, with the paired t interval of the differences
    a, b = [1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]
    got = stats.cluster_ratio_difference(a, [1] * 4, b, [1] * 4)
    want = stats.paired_t_interval(a, b)
    assert got.mean == pytest.approx(want.mean) and got.half == pytest.approx(want.half)
    assert np.isnan(stats.cluster_ratio_difference([1], [1], [0], [0]).mean)
