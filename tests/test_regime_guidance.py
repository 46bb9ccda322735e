"""The guidance gradient by position class (issue 20, item 1; python -m repro.regime --guidance-only): the split of a
gradient at the final hidden states by position class (repro.guidance_share), and the probe on a real TGPO-Reg run of
tiny untrained lab models, two steps."""

from __future__ import annotations

import argparse
import contextlib
import functools

import numpy as np
import pytest
import torch

from repro import guidance_share as G
from repro import regime
from tgpo.lab import positions as P

TEXTS = ("3+7=10;10+5=15;\\boxed{15}", "7 plus 3 is 10. \\boxed{10}")
PROMPT_LEN, WIDTH = 3, 5


def _batch():
    """Hidden states ``[2, P+T, d]`` (requires grad) of two completions, their classes ``[2, T]`` (padded with
    ``MASKED``) and T."""
    tokens = [P.completion_tokens(t, eos=True) for t in TEXTS]
    T = max(map(len, tokens))
    classes = np.full((len(tokens), T), G.MASKED, dtype=object)
    for i, toks in enumerate(tokens):
        classes[i, : len(toks)] = P.position_classes(toks)
    hidden = torch.randn(len(tokens), PROMPT_LEN + T, WIDTH, generator=torch.Generator().manual_seed(0),
                         requires_grad=True)
    return hidden, classes, T


def _term(hidden, T, weights):
    """A loss that reads the positions predicting the completion (the trainer's slice) with per-position ``weights``."""
    w = torch.as_tensor(weights, dtype=hidden.dtype)
    read = hidden[:, -T - 1 : -1]
    return (w * (read * torch.arange(1.0, WIDTH + 1)).sum(-1).pow(2)).sum()


def test_shares_of_a_gradient_that_reads_every_position_sum_to_100():
    hidden, classes, T = _batch()
    term = _term(hidden, T, (classes != G.MASKED).astype(float))
    per_position, per_row = G.position_norms(term, hidden, T)
    assert per_position.sum(1) == pytest.approx(per_row)  # nothing outside the slice the loss reads
    shares = G.class_shares(per_position, per_row, classes, np.array([0, 1]))
    assert shares["all"].mean == pytest.approx(100)
    assert sum(shares[g].mean for g in P.GROUPS if g in shares) == pytest.approx(100)
    assert sum(shares[c].mean for c in P.CLASSES if c in shares) == pytest.approx(100)
    assert 0 < shares["content"].mean < 100 and shares["content"].n == (np.isin(classes, P.GROUPS["content"])).sum()


def test_a_term_that_reads_only_step_starts_puts_all_its_gradient_there():
    hidden, classes, T = _batch()
    term = _term(hidden, T, (classes == "order").astype(float))
    shares = G.class_shares(*G.position_norms(term, hidden, T), classes, np.array([0, 1]))
    assert shares["order"].mean == pytest.approx(100) and shares["style"].mean == pytest.approx(100)
    assert shares["content"].mean == 0 and shares["structure"].mean == 0 and shares["connective"].mean == 0
    # the share of positions is the class's count, whatever the gradient
    positions = G.position_shares(classes, np.array([0, 1]))
    assert positions["order"].mean == pytest.approx(100 * (classes == "order").sum() / (classes != G.MASKED).sum())


def test_a_gradient_on_positions_outside_the_completion_is_not_counted_in_any_class():
    hidden, classes, T = _batch()
    term = _term(hidden, T, (classes != G.MASKED).astype(float)) + hidden[:, 0].pow(2).sum()  # also reads the prompt
    shares = G.class_shares(*G.position_norms(term, hidden, T), classes, np.array([0, 0]))
    assert shares["all"].mean < 100


@pytest.fixture(scope="module")
def tiny_lab_pair(tmp_path_factory):
    """Untrained tiny lab models (the lab's tokenizer and architecture), student and teacher of different seeds."""
    from tgpo.lab import config as C
    from tgpo.lab.models import new_model
    from tgpo.lab.tokenizer import build_tokenizer

    root, tok = tmp_path_factory.mktemp("lab_pair"), build_tokenizer()
    out = []
    for role, seed in (("student", 0), ("teacher", 1)):
        torch.manual_seed(seed)
        new_model(C.MODELS[C.TINY_TEST], tok).save_pretrained(root / role)
        tok.save_pretrained(root / role)
        out.append(str(root / role))
    return out


def test_guidance_run_measures_each_step_on_that_steps_model_and_batch(tiny_lab_pair, monkeypatch):
    """Two TGPO-Reg steps through the lab's job path; the probe's norm ratio at step k is the trainer's own logged
    guidance/grad_share of step k (same batch, same policy), its shares add up, and lambda_k follows the schedule."""
    student, teacher = tiny_lab_pair
    table = regime.load_table("lab", regime.RECIPE)
    trainer = {**table.trainer, "per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 10}
    original = regime.lab_trainer

    def half_right(prompts, completions, **kwargs):  # untrained models are never right: give groups reward variance
        return [float(len(c) % 2) for c in completions]

    @contextlib.contextmanager
    def with_varied_reward(*a, **kw):
        with original(*a, **kw) as run:
            run.reward_funcs[0] = functools.wraps(run.reward_funcs[0])(half_right)
            yield run

    monkeypatch.setattr(regime, "lab_trainer", with_varied_reward)
    args = argparse.Namespace(student=student, teacher=teacher, rl_split="k4", seed=0, guidance_steps=2,
                              preset="controlled")
    steps = regime.guidance_run(args, table, trainer, [1, 2])
    schedule = table.select(["tgpo"])[0].trainer
    assert [m["step"] for m in steps] == [1, 2]
    assert steps[0]["norm_ratio"] != pytest.approx(steps[1]["norm_ratio"])  # two different batches and policies
    for m in steps:
        assert m["norm_ratio"] == pytest.approx(m["logged_share"], rel=1e-5)
        assert m["guidance_weight"] == pytest.approx(schedule["guidance_weight"] - (m["step"] - 1) * schedule["guidance_decay"])
        for key in ("guidance", "pg", "share_of_positions"):
            shares = m[key]
            assert shares["all"].mean == pytest.approx(100)
            assert sum(shares[g].mean for g in P.GROUPS if g in shares) == pytest.approx(100)
            assert sum(shares[c].mean for c in P.CLASSES if c in shares) == pytest.approx(100)
        assert m["positions"] == m["share_of_positions"]["all"].n > 0
    rows = regime.guidance_rows(steps)
    assert {r["statistic"] for r in rows} == {regime.NORM_RATIO, *regime.GUIDANCE_SHARES.values()}
    text = regime.render_guidance(regime.pd.DataFrame(rows, columns=regime.GUIDANCE_COLUMNS), steps,
                                  argparse.Namespace(**vars(args), guidance_at=(1,)), "tiny")
    assert "| content" in text and "step 2" in text


def test_a_step_past_the_schedules_end_is_refused_before_training():
    table = regime.load_table("lab", regime.RECIPE)
    args = argparse.Namespace(guidance_steps=90, guidance_at=(1, 10))
    with pytest.raises(regime.UsageError, match="guidance weight"):
        regime.guidance_steps(args, table)
    assert regime.guidance_steps(argparse.Namespace(guidance_steps=3, guidance_at=(1, 10)), table) == [1, 3]
