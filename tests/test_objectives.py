"""Property tests of the losses training runs: every registered method through ``method_loss``, against the
naive formulas of docs/method.md in tests/oracles.py (written independently of the registry), and the helpers the
entries use (group advantages, aggregation, clipping, KL estimators, the guidance schedule).

"Divergent regime" = teacher log-probs of the student's sampled tokens of -20 or less (or a teacher token the student
gives ~0 probability). Gradients are taken with respect to the student's logits ``z`` (a leaf tensor), as a real
model's LM head would see them.
"""

from __future__ import annotations

import math
import warnings

import oracles
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tgpo import objectives as obj

settings.register_profile("tgpo", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("tgpo")

seeds = st.integers(0, 2**31 - 1)


def make_rollout(seed: int, batch: int = 3, length: int = 5, vocab: int = 11, scale: float = 2.0):
    """Student logits ``[B,T,V]`` (leaf), sampled tokens, a teacher argmax different from them, a mask."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, length, vocab, generator=gen) * scale).requires_grad_(True)
    sampled = torch.randint(0, vocab, (batch, length), generator=gen)
    teacher_argmax = (sampled + torch.randint(1, vocab, (batch, length), generator=gen)) % vocab
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    return logits, sampled, teacher_argmax, mask


def gather_logp(logits, ids):
    return torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def grad_of(loss, leaf):
    if not loss.requires_grad:  # e.g. a term that does not depend on ``leaf`` at all
        return torch.zeros_like(leaf)
    (g,) = torch.autograd.grad(loss, leaf, allow_unused=True, retain_graph=True)
    return torch.zeros_like(leaf) if g is None else g


# ===================================================================== every method through the registry
#: Every registered method (the trained path: ``method_loss``), each compared with its oracle in tests/oracles.py.
METHOD_NAMES = ["grpo", "tgpo", "tgpo_adv", "rkl", "kdrl", "kdrl_authors", "luffy"]
#: Every aggregation kind: (name, Aggregation fields besides accumulation/world size/token count).
AGG_KINDS = {
    "dapo": dict(kind="dapo"),
    "dr_grpo": dict(kind="dr_grpo", padded_length=7),
    "dr_grpo_sum": dict(kind="dr_grpo", padded_length=7, row_mean=False),
    "grpo": dict(kind="grpo"),
    "bnpo": dict(kind="bnpo"),
}


def case(seed, method, *, batch=4, length=5, vocab=7, several_updates=True, weights=None, divergent=False,
         weight=0.3, old_guided=False, traces=True, entropy_coef=0.01, **cfg):
    """A random micro-batch for ``method``: ``(logits leaf, kwargs shared by LossInputs and the oracle, cfg)``.

    Rows have random lengths (padding, and sometimes a row with no real token); ``several_updates`` makes the
    rollout policy differ from the current one (``old_logp != logp``); ``weights`` is None, ``"token"`` ([B, T]) or
    ``"row"`` ([B, 1]) importance weights; LUFFY gets a random set of teacher-trace rows (``traces``) or none.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, length, vocab, generator=gen) * 2).requires_grad_(True)
    sampled = torch.randint(0, vocab, (batch, length), generator=gen)
    y_t = (sampled + torch.randint(1, vocab, (batch, length), generator=gen)) % vocab
    lengths = torch.randint(0, length + 1, (batch,), generator=gen)
    lengths[0] = length  # at least one full row
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    logp, guided = gather_logp(logits, sampled), gather_logp(logits, y_t)
    old = logp.detach() + (0.4 * torch.randn(mask.shape, generator=gen) if several_updates else 0.0)
    teacher = (divergent_teacher_logp(seed, mask.shape) if divergent
               else logp.detach() - 3 * torch.rand(mask.shape, generator=gen))
    shape = {"token": mask.shape, "row": (batch, 1)}.get(weights)
    kw = dict(
        logp=logp, old_logp=old, mask=mask, entropy=obj.entropy_from_logits(logits),
        advantages=torch.randn(batch, generator=gen),
        guided_logp=None, old_guided_logp=None, teacher_logp=None, off_policy=None, guidance_weight=0.0,
        is_weights=None if shape is None else 0.5 + torch.rand(shape, generator=gen),
    )
    if method == "tgpo":
        kw.update(guided_logp=guided, guidance_weight=weight)
    if method == "tgpo_adv":  # the trainer passes lp_g detached, and the rollout policy's lp_g when it differs
        kw.update(guided_logp=guided.detach(), guidance_weight=weight)
        if old_guided:
            kw["old_guided_logp"] = guided.detach() - 0.4 * torch.rand(mask.shape, generator=gen)  # a log-prob: <= 0
    if method in ("rkl", "kdrl", "kdrl_authors"):
        kw["teacher_logp"] = teacher
    if method == "luffy":  # no off_policy: every row is an on-policy rollout
        kw["off_policy"] = torch.rand(batch, generator=gen) < 0.5 if traces else None
    cfg.setdefault("entropy_coef", entropy_coef)
    return logits, kw, obj.LossConfig(**cfg)


def entry(method, kw, cfg, how: obj.Aggregation):
    return obj.method_loss(method, obj.LossInputs(aggregation=how, **kw), cfg)


def oracle(method, kw, cfg, how: obj.Aggregation):
    o = dict(kw, weight=kw["guidance_weight"])
    del o["guidance_weight"]
    return oracles.loss(
        method, **o, how=oracles.Agg(how.kind, None if how.num_tokens is None else float(how.num_tokens),
                                     how.padded_length, how.row_mean, how.accumulation, how.world_size),
        clip_eps=cfg.clip_eps, clip_eps_high=cfg.clip_eps_high, delta=cfg.delta,
        entropy_coef=cfg.entropy_coef * cfg.entropy_micro_batches,
        beta=cfg.kdrl_beta, estimator=cfg.kdrl_estimator, gamma=cfg.luffy_shaping_gamma)


def assert_same_loss_and_gradient(got, expected, leaf):
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_of(got, leaf).double(), grad_of(expected, leaf).double(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", list(AGG_KINDS))
@pytest.mark.parametrize("method", METHOD_NAMES)
@settings(max_examples=12)
@given(seed=seeds, accumulation=st.sampled_from([1, 3]), world=st.sampled_from([1, 2]),
       weights=st.sampled_from([None, "token", "row"]), several_updates=st.booleans(), divergent=st.booleans(),
       old_guided=st.booleans(), batch_tokens=st.booleans(), estimator=st.sampled_from(["k2", "k3"]),
       clip=st.sampled_from([(0.2, None, None), (0.1, 0.3, 1.5)]), traces=st.booleans(), int_mask=st.booleans(),
       weight=st.sampled_from([0.0, 0.3]), entropy_micro_batches=st.sampled_from([1.0, 3.0]))
def test_every_method_matches_its_oracle(method, kind, seed, accumulation, world, weights, several_updates, divergent,
                                         old_guided, batch_tokens, estimator, clip, traces, int_mask, weight,
                                         entropy_micro_batches):
    """Every method x every aggregation x gradient accumulation x world size x importance weights (absent, per token,
    per row) x one or several updates per rollout batch x LUFFY's trace rows: the registered entry's loss, its
    gradient w.r.t. the student's logits and its logged diagnostics equal the naive formulas of docs/method.md."""
    logits, kw, cfg = case(seed, method, weights=weights, several_updates=several_updates, divergent=divergent,
                           old_guided=old_guided, traces=traces, weight=weight, kdrl_estimator=estimator, clip_eps=clip[0], clip_eps_high=clip[1],
                           delta=clip[2], kdrl_beta=0.05, luffy_shaping_gamma=0.2,
                           entropy_micro_batches=entropy_micro_batches)
    if int_mask:  # TRL's completion masks are integer tensors
        kw["mask"] = kw["mask"].long()
    n_tok = float(kw["mask"].sum()) * accumulation + 1.0 if batch_tokens else None
    if kind == "dapo" and n_tok is None:  # dapo without the batch's token count: this micro-batch is the batch
        accumulation = 1
    how = obj.Aggregation(**AGG_KINDS[kind], num_tokens=n_tok, accumulation=accumulation, world_size=world)
    out = entry(method, kw, cfg, how)
    assert_same_loss_and_gradient(out.loss, oracle(method, kw, cfg, how), logits)
    o = dict(kw, weight=kw["guidance_weight"], clip_eps=cfg.clip_eps, clip_eps_high=cfg.clip_eps_high)
    expected = oracles.metrics(method, **o)
    assert set(out.metrics) == {"policy_loss", *expected}  # no diagnostic of a term that is off (lambda_k = 0)
    for name, value in expected.items():
        torch.testing.assert_close(out.metrics[name].double(), torch.as_tensor(value, dtype=torch.float64),
                                   rtol=1e-5, atol=1e-6, equal_nan=True, msg=f"{method}: {name}")
    # policy_loss (TRL's name) is the method's loss before the entropy bonus (LUFFY: its whole loss; the others: the PG term)
    bonus = oracles.entropy_term(kw["entropy"], kw["mask"], oracles.Agg(how.kind, n_tok, accumulation=accumulation),
                                 cfg.entropy_coef * cfg.entropy_micro_batches)
    if method in ("grpo", "luffy", "tgpo_adv", "rkl"):
        torch.testing.assert_close(out.metrics["policy_loss"].double(), (oracle(method, kw, cfg, how) - bonus).detach(),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("kind", ["dapo", "dr_grpo", "dr_grpo_sum", "grpo"])
def test_gradient_accumulation_adds_up_to_the_whole_batch(method, kind):
    """The trainer's split of one optimizer batch into micro-batches: the micro-batch losses, each aggregated with the
    accumulation (and under dapo the whole batch's token count), add up to the whole batch's loss and gradient.
    Equal-sized micro-batches (as TRL's); the per-micro-batch entropy bonus is left out of the non-dapo kinds, where
    it is a mean per micro-batch by design."""
    logits, kw, cfg = case(11, method, batch=8, weights="token", entropy_coef=0.01 if kind == "dapo" else 0.0)
    n_tok = kw["mask"].sum()
    whole = entry(method, kw, cfg, obj.Aggregation(**AGG_KINDS[kind], num_tokens=n_tok))
    parts = []
    for rows in torch.arange(8).split(2):
        part = {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        parts.append(entry(method, part, cfg, obj.Aggregation(**AGG_KINDS[kind], num_tokens=n_tok, accumulation=4)).loss)
    torch.testing.assert_close(sum(parts), whole.loss)
    torch.testing.assert_close(grad_of(sum(parts), logits), grad_of(whole.loss, logits))


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_padded_sum_shares_average_to_the_whole_batch_loss_over_processes(method):
    """The authors' padded-length sum: two processes each see half the rows and their gradients are averaged, so each
    process's share is multiplied by the world size and the average is the one-process loss."""
    logits, kw, cfg = case(5, method, batch=6, entropy_coef=0.0)
    how = dict(AGG_KINDS["dr_grpo_sum"])
    whole = entry(method, kw, cfg, obj.Aggregation(**how)).loss
    shares = [entry(method, {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}, cfg,
                    obj.Aggregation(**how, world_size=2)).loss for rows in torch.arange(6).split(3)]
    torch.testing.assert_close(sum(shares) / 2, whole)
    torch.testing.assert_close(grad_of(sum(shares) / 2, logits), grad_of(whole, logits))


def test_registering_a_method_makes_it_a_loss_of_method_loss():
    """The module docstring's recipe: one ``register`` line adds a method that ``method_loss`` runs."""
    def doubled(x, cfg):
        out = obj.grpo(x, cfg)
        return obj.LossOutputs(2 * out.loss, out.metrics)

    logits, kw, cfg = case(1, "grpo")
    try:
        spec = obj.register("test_doubled_grpo", doubled, label="GRPO x 2")
        assert obj.METHODS["test_doubled_grpo"] is spec and spec.label == "GRPO x 2" and spec.loss is doubled
        how = obj.Aggregation()
        grpo, twice = entry("grpo", kw, cfg, how), entry("test_doubled_grpo", kw, cfg, how)
        bonus = grpo.loss - grpo.metrics["policy_loss"]
        torch.testing.assert_close(twice.loss, 2 * grpo.metrics["policy_loss"] + bonus)
    finally:
        obj.METHODS.pop("test_doubled_grpo", None)


@pytest.mark.parametrize("method", ["grpo", "luffy"])
@pytest.mark.parametrize("log_ratio", [-30.0, 30.0])
def test_importance_ratio_is_the_exp_of_the_clamped_log_ratio(method, log_ratio):
    """``rho = exp(clamp(lp - lp_old, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))`` (finite for any old log-prob); the clipped
    surrogate reads it through its clip, LUFFY's unclipped on-policy loss directly: ``-A * rho``."""
    logp = torch.tensor([[-1.0]], requires_grad=True)
    a = -1.0 if method == "luffy" else 1.0
    x = obj.LossInputs(logp=logp, old_logp=logp.detach() - log_ratio, advantages=torch.tensor([a]),
                       mask=torch.ones(1, 1, dtype=torch.bool), entropy=torch.zeros(1, 1))
    loss = obj.method_loss(method, x, obj.LossConfig(entropy_coef=0.0, clip_eps=0.2)).loss
    rho = math.exp(math.copysign(obj.LOG_RATIO_CLAMP, log_ratio))
    clip = min(max(rho, 0.8), 1.2)
    expected = -a * rho if method == "luffy" else max(-a * rho, -a * clip)  # grpo: the larger of the two branches
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert grad_of(loss, logp).item() == 0.0  # outside the clamp (and, for grpo, the clip) no gradient


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_the_loss_keeps_the_log_probs_dtype_whatever_the_advantages_and_weights(method):
    """Advantages and importance weights (float64 when the rewards are) are cast to the log-probs' dtype: a float32
    model gets a float32 loss and float32 diagnostics."""
    _, kw, cfg = case(6, method, weights="token")
    kw.update(advantages=kw["advantages"].double(), is_weights=kw["is_weights"].double())
    if kw["old_guided_logp"] is None and method == "tgpo_adv":
        kw["old_guided_logp"] = kw["guided_logp"].detach()
    out = entry(method, kw, cfg, obj.Aggregation(num_tokens=torch.tensor(9.0)))
    assert out.loss.dtype == torch.float32
    assert {k: v.dtype for k, v in out.metrics.items()} == dict.fromkeys(out.metrics, torch.float32)


def test_bad_settings_are_one_exact_line_naming_the_input():
    values, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    cases = [
        (lambda: obj.aggregate(values, mask, obj.Aggregation("dr_grpo")),
         "Aggregation('dr_grpo') needs padded_length (the max completion length)"),
        (lambda: obj.aggregate(values, mask, obj.Aggregation("sum")),
         "unknown aggregation 'sum'; expected dapo, dr_grpo, grpo or bnpo"),
        (lambda: obj.group_advantages(torch.ones(5), 4), "rewards must be [N] with N divisible by group_size=4, got (5,)"),
        (lambda: obj.group_advantages(torch.ones(2, 2), 2),
         "rewards must be [N] with N divisible by group_size=2, got (2, 2)"),
        (lambda: obj.group_advantages(torch.ones(4), 0), "rewards must be [N] with N divisible by group_size=0, got (4,)"),
        (lambda: obj.group_advantages(torch.ones(4), 4, scale="rank"),
         "unknown reward scaling 'rank'; expected group, batch or none"),
        (lambda: obj.guidance_weight(0), "guidance_weight: step is 1-based, got 0"),
        (lambda: obj.kl_estimate(values, values, "k4"), "unknown KL estimator 'k4'; expected 'k1', 'k2' or 'k3'"),
    ]
    _, kw, cfg = case(0, "grpo")
    cases.append((lambda: entry("nope", kw, cfg, obj.Aggregation()),
                  "unknown method 'nope'; expected one of grpo, luffy, rkl, kdrl, kdrl_authors, tgpo, tgpo_adv"))
    cases.append((lambda: obj.Method(loss=obj.grpo, label="X", reads=frozenset({"clip_eps", "nope"})),
                  "Method 'X': reads unknown LossConfig fields ['nope']"))
    for call, message in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == message


# ------------------------------------------------------------------- the survivors named in issue 21
def test_luffy_importance_weights_apply_to_on_policy_rows_only():
    """vLLM's importance weights correct for the sampler; the teacher-trace rows were not sampled, so their weights
    must not touch the loss (and on-policy rows' weights must)."""
    logits, kw, cfg = case(3, "luffy", weights="token")
    kw["off_policy"] = torch.tensor([True, False, True, False])
    base = entry("luffy", kw, cfg, obj.Aggregation()).loss
    on_trace = kw["is_weights"].clone()
    on_trace[kw["off_policy"]] *= 3.0
    moved_trace = entry("luffy", dict(kw, is_weights=on_trace), cfg, obj.Aggregation()).loss
    torch.testing.assert_close(moved_trace, base)
    torch.testing.assert_close(grad_of(moved_trace, logits), grad_of(base, logits))
    on_policy = kw["is_weights"].clone()
    on_policy[~kw["off_policy"]] *= 3.0
    assert not torch.allclose(entry("luffy", dict(kw, is_weights=on_policy), cfg, obj.Aggregation()).loss, base)


@pytest.mark.parametrize("kind", ["dr_grpo", "dr_grpo_sum", "grpo"])
def test_tgpo_guidance_term_uses_the_configured_aggregation(kind):
    """TGPO-Reg's guidance term is reduced like the policy-gradient term, not by a plain token mean."""
    logits, kw, cfg = case(4, "tgpo", entropy_coef=0.0, weight=1.0)
    how = obj.Aggregation(**AGG_KINDS[kind])
    guidance = entry("tgpo", kw, cfg, how).loss - entry("tgpo", dict(kw, guidance_weight=0.0), cfg, how).loss
    m = kw["mask"].float()
    neg = -kw["guided_logp"] * m
    expected = {"dr_grpo": neg.sum() / (m.size(0) * 7), "dr_grpo_sum": neg.sum() / 7,
                "grpo": (neg.sum(1) / m.sum(1).clamp(min=1)).mean()}[kind]
    torch.testing.assert_close(guidance, expected)
    assert not torch.allclose(guidance, neg.sum() / m.sum())


# ---------------------------------------------------------------------------- sign conventions
@pytest.mark.parametrize("method", ["grpo", "tgpo", "tgpo_adv", "kdrl", "kdrl_authors", "luffy"])
def test_a_gradient_step_raises_the_likelihood_of_positive_advantage_samples(method):
    """Losses are minimised: one SGD step raises ``lp`` of a row with A > 0 and lowers it for A < 0 (one token per
    row, no teacher term, no entropy, on-policy)."""
    logits, kw, cfg = case(9, method, batch=2, length=1, several_updates=False, weight=0.0, entropy_coef=0.0,
                           kdrl_beta=0.0)
    kw.update(advantages=torch.tensor([1.0, -1.0]), mask=torch.ones(2, 1, dtype=torch.bool))
    if method == "luffy":
        kw["off_policy"] = torch.tensor([True, False])
    g = grad_of(entry(method, kw, cfg, obj.Aggregation()).loss, logits)
    sampled = kw["logp"].detach()
    after = torch.log_softmax(logits.detach() - 0.1 * g, -1)
    before = torch.log_softmax(logits.detach(), -1)
    moved = (after - before).gather(-1, (before - sampled.unsqueeze(-1)).abs().argmin(-1, keepdim=True)).squeeze(-1)
    assert moved[0, 0] > 0 and moved[1, 0] < 0


def test_kdrl_variants_are_opposite_in_sign_and_estimator():
    """KDRL minimises beta * k2 (the estimated reverse KL goes down); the authors' variant subtracts beta * k1."""
    logits, kw, cfg = case(3, "kdrl", divergent=True, entropy_coef=0.0, kdrl_beta=0.5)
    kw["advantages"] = torch.zeros(4)  # the PG term is exactly 0: what is left is the KL term
    m, d = kw["mask"], (kw["logp"] - kw["teacher_logp"])
    correct = entry("kdrl", kw, cfg, obj.Aggregation()).loss
    authors = entry("kdrl_authors", kw, cfg, obj.Aggregation()).loss
    torch.testing.assert_close(correct, 0.5 * (0.5 * d * d)[m].mean())
    torch.testing.assert_close(authors, -0.5 * d[m].mean())
    assert correct > 0 and authors < 0  # minimising the authors' term *raises* the estimated KL
    with pytest.raises(ValueError, match="k4"):
        obj.kl_estimate(kw["logp"], kw["teacher_logp"], "k4")


# ------------------------------------------------------------------------- guidance gradient (§2)
def guidance_only(seed, weight=1.0, divergence=0.0):
    """TGPO-Reg with A = 0 and no entropy: its loss is the guidance term alone."""
    logits, kw, cfg = case(seed, "tgpo", weight=weight, entropy_coef=0.0)
    gen = torch.Generator().manual_seed(seed)
    y_t = torch.randint(0, logits.shape[-1], kw["mask"].shape, generator=gen)
    with torch.no_grad():
        logits.scatter_add_(-1, y_t.unsqueeze(-1), torch.full(y_t.shape + (1,), -divergence))
    kw.update(advantages=torch.zeros(kw["mask"].shape[0]), guided_logp=gather_logp(logits, y_t),
              logp=gather_logp(logits, y_t).detach())
    return logits, y_t, kw, entry("tgpo", kw, cfg, obj.Aggregation()).loss


@given(seed=seeds, weight=st.floats(1e-3, 2.0))
def test_guidance_gradient_is_weight_times_softmax_minus_onehot_over_token_count(seed, weight):
    logits, y_t, kw, loss = guidance_only(seed, weight)
    mask = kw["mask"]
    expected = weight * (torch.softmax(logits, -1) - torch.nn.functional.one_hot(y_t, logits.shape[-1])) / mask.sum()
    torch.testing.assert_close(grad_of(loss, logits), (expected * mask.unsqueeze(-1)).detach(), atol=1e-6, rtol=1e-5)


@given(seed=seeds, divergence=st.floats(0.0, 60.0))
def test_guidance_step_raises_teacher_token_for_any_divergence(seed, divergence):
    """However far the student is from the teacher (the teacher's token pushed down by ``divergence`` nats, i.e. the
    student gives it ~0 probability), one SGD step on TGPO-Reg's loss raises its probability at every real position,
    and the gradient stays bounded by sqrt(2) * weight / N_tok per position."""
    logits, y_t, kw, loss = guidance_only(seed, 1.0, divergence)
    mask = kw["mask"]
    before = gather_logp(logits, y_t).detach()
    g = grad_of(loss, logits)
    assert (g.norm(dim=-1) <= math.sqrt(2) / mask.sum() + 1e-7).all()
    after = gather_logp(logits - 0.5 * g, y_t)
    assert (after[mask] > before[mask]).all() or divergence > 50  # float32 underflow of exp(-60) is allowed
    assert (after[mask] >= before[mask]).all()


# ------------------------------------------------------------------------- RKL, divergent regime
def divergent_teacher_logp(seed, shape, low=-80.0):
    gen = torch.Generator().manual_seed(seed + 1)
    return low + (-20.0 - low) * torch.rand(shape, generator=gen)  # all in [low, -20]


@given(seed=seeds)
def test_rkl_advantages_all_negative_in_divergent_regime(seed):
    logits, sampled, _, mask = make_rollout(seed)  # student log-probs >= log(1/V) - 2*range > -20 here
    old = gather_logp(logits, sampled).detach()
    assume((old > -20).all())
    adv = obj.rkl_advantages(divergent_teacher_logp(seed, old.shape), old, mask)
    assert (adv[mask] < 0).all()
    assert (adv[~mask] == 0).all()


def rkl_loss(logp, teacher, mask, old=None):
    x = obj.LossInputs(logp=logp, old_logp=logp.detach() if old is None else old, advantages=torch.zeros(mask.shape[0]),
                       mask=mask, entropy=torch.zeros_like(logp), teacher_logp=teacher)
    return obj.method_loss("rkl", x, obj.LossConfig(entropy_coef=0.0)).loss


@given(seed=seeds)
def test_rkl_step_pushes_down_samples_and_never_toward_the_teacher(seed):
    logits, sampled, yT, mask = make_rollout(seed)
    logp = gather_logp(logits, sampled)
    assume((logp > -20).all())
    g = grad_of(rkl_loss(logp, divergent_teacher_logp(seed, logp.shape), mask), logits)
    step = logits - 1e-2 * g
    before, after = torch.log_softmax(logits, -1).detach(), torch.log_softmax(step, -1).detach()
    delta = after - before  # change of every token's log-prob at every position
    probs = before.exp()
    for b, t in mask.nonzero().tolist():
        s, teacher = sampled[b, t].item(), yT[b, t].item()
        assert delta[b, t, s] < 0, "the sampled token must lose probability"
        others = [
            v for v in range(logits.shape[-1]) if v not in (s, teacher) and probs[b, t, v] >= probs[b, t, teacher]
        ]
        for v in others:  # no direction toward the teacher: it gains no more than any likelier unsampled token
            assert delta[b, t, teacher] <= delta[b, t, v] + 1e-7


@given(seed=seeds)
def test_rkl_gradient_norm_grows_linearly_with_teacher_logprob(seed):
    logits, sampled, _, _ = make_rollout(seed, batch=1, length=1)
    mask = torch.ones(1, 1, dtype=torch.bool)
    logp = gather_logp(logits, sampled)
    assume(logp.item() > -20)

    def norm_at(teacher_logp):
        return grad_of(rkl_loss(logp, torch.full_like(logp, teacher_logp), mask), logits).norm().item()

    norms = [norm_at(-a) for a in (20.0, 40.0, 80.0, 160.0)]
    assert all(b > a for a, b in zip(norms, norms[1:]))
    slopes = [(norms[i + 1] - norms[i]) / d for i, d in enumerate((20.0, 40.0, 80.0))]
    assert max(slopes) == pytest.approx(min(slopes), rel=1e-3)  # affine in |lp_T|


@given(seed=seeds, teacher_logp=st.floats(-1e6, -1e3))
def test_guidance_gradient_bounded_where_rkl_gradient_is_not(seed, teacher_logp):
    logits, y_t, kw, guidance = guidance_only(seed)
    g = grad_of(guidance, logits)
    lp = kw["logp"].detach().requires_grad_(False)
    logp = gather_logp(logits, torch.randint(0, logits.shape[-1], lp.shape, generator=torch.Generator().manual_seed(seed)))
    g_rkl = grad_of(rkl_loss(logp, torch.full_like(lp, teacher_logp), kw["mask"]), logits)
    assert g_rkl.norm() > g.norm()


def test_rkl_advantage_reads_the_rollout_policy_not_the_current_one():
    """With several updates per rollout batch the per-token advantage is lp_T - lp_old (fixed during the updates)."""
    logits, sampled, _, mask = make_rollout(2)
    logp = gather_logp(logits, sampled)
    teacher = logp.detach() - 1.0
    old = logp.detach() + 0.3
    got = grad_of(rkl_loss(logp, teacher, mask, old), logits)
    ratio = torch.exp(logp - old)
    adv = (teacher - old).detach()
    naive = (torch.maximum(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)) * mask).sum() / mask.sum()
    torch.testing.assert_close(got, grad_of(naive, logits))


# ----------------------------------------------------------------------------------- KL estimators
@given(seed=seeds)
def test_k1_gradient_ignores_teacher_k2_k3_do_not(seed):
    logits, sampled, _, mask = make_rollout(seed)
    # teachers near the student: in the divergent regime k3's gradient 1 - exp(-d) rounds to 1 in float32
    t1 = gather_logp(logits, sampled).detach() - torch.rand(sampled.shape, generator=torch.Generator().manual_seed(seed)) * 3
    t2 = t1 - 0.5

    def kl_grad(method, estimator, teacher):
        logp = gather_logp(logits, sampled)
        x = obj.LossInputs(logp=logp, old_logp=logp.detach(), advantages=torch.zeros(3), mask=mask,
                           entropy=torch.zeros_like(logp), teacher_logp=teacher)
        cfg = obj.LossConfig(entropy_coef=0.0, kdrl_estimator=estimator)
        return grad_of(obj.method_loss(method, x, cfg).loss, logits)

    assert torch.equal(kl_grad("kdrl_authors", "k1", t1), kl_grad("kdrl_authors", "k1", t2))
    assert not torch.allclose(kl_grad("kdrl", "k2", t1), kl_grad("kdrl", "k2", t2))
    assert not torch.allclose(kl_grad("kdrl", "k3", t1), kl_grad("kdrl", "k3", t2))


@given(seed=seeds)
def test_kl_estimator_values(seed):
    logits, sampled, _, mask = make_rollout(seed)
    logp = gather_logp(logits, sampled).detach()
    teacher = logp - torch.rand_like(logp) * 3
    d = logp - teacher
    torch.testing.assert_close(obj.kl_estimate(logp, teacher, "k1"), d)
    torch.testing.assert_close(obj.kl_estimate(logp, teacher, "k2"), d**2 / 2)
    torch.testing.assert_close(obj.kl_estimate(logp, teacher, "k3"), torch.exp(-d) + d - 1)


# ---------------------------------------------------------------------- all-equal groups, padding
@pytest.mark.parametrize("method", ["grpo", "tgpo", "tgpo_adv", "kdrl", "kdrl_authors", "luffy"])
@given(value=st.floats(-5, 5), group_size=st.integers(1, 6), seed=seeds)
def test_equal_rewards_give_zero_advantage_and_zero_policy_gradient(method, value, group_size, seed):
    adv = obj.group_advantages(torch.full((group_size,), value), group_size)
    assert torch.equal(adv, torch.zeros(group_size))
    logits, kw, cfg = case(seed, method, batch=group_size, weight=0.0, entropy_coef=0.0, kdrl_beta=0.0)
    kw["advantages"] = adv
    g = grad_of(entry(method, kw, cfg, obj.Aggregation()).loss, logits)
    assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("method", METHOD_NAMES)
@given(seed=seeds, junk=st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -7.0]),
       kind=st.sampled_from(list(AGG_KINDS)))
def test_masked_positions_never_change_loss_or_gradient(method, seed, junk, kind):
    """Values at padding (nan, inf, huge) in any input tensor never reach any method's loss or gradient."""
    _, kw, cfg = case(seed, method, weights="token")
    assume((~kw["mask"]).any())
    mask = kw["mask"]
    names = [k for k in ("logp", "old_logp", "entropy", "guided_logp", "old_guided_logp", "teacher_logp", "is_weights")
             if kw[k] is not None]
    how = obj.Aggregation(**AGG_KINDS[kind])

    def run(dirty):
        leaves = {k: (torch.where(mask, kw[k].detach(), torch.full_like(kw[k], junk)) if dirty else kw[k].detach())
                  .clone().requires_grad_(True) for k in names}
        out = entry(method, dict(kw, **leaves), cfg, how)
        grads = torch.autograd.grad(out.loss, list(leaves.values()), allow_unused=True)
        return out, [torch.zeros_like(mask, dtype=torch.float32) if g is None else g for g in grads]

    (clean, clean_grads), (dirty, dirty_grads) = run(False), run(True)
    assert torch.equal(clean.loss, dirty.loss)
    for name, value in clean.metrics.items():
        assert torch.equal(value.nan_to_num(-1.0), dirty.metrics[name].nan_to_num(-1.0)), name  # NaN: an empty row
    for a, b in zip(clean_grads, dirty_grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("kind", list(AGG_KINDS))
def test_all_masked_batch_gives_zero_loss_and_zero_gradient(method, kind):
    logits, kw, cfg = case(0, method)
    kw["mask"] = torch.zeros_like(kw["mask"])
    loss = entry(method, kw, cfg, obj.Aggregation(**AGG_KINDS[kind])).loss
    assert loss.item() == 0.0
    g = grad_of(loss, logits)
    assert torch.isfinite(g).all() and (g == 0).all()


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("logit_scale", [1e4, -1e4])
def test_extreme_inputs_stay_finite(method, dtype, logit_scale):
    """Saturated logits, old log-probs of -1e9 and teachers at -1e9 or 0: every loss and gradient stays finite."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.sign(torch.randn(2, 4, 7, generator=gen)) * logit_scale).to(dtype).requires_grad_(True)
    sampled = torch.randint(0, 7, (2, 4), generator=gen)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 2:] = False
    logp, guided = gather_logp(logits, sampled), gather_logp(logits, (sampled + 1) % 7)
    for teacher_value in (-1e9, 0.0):
        x = obj.LossInputs(logp=logp, old_logp=torch.full_like(logp, -1e9), mask=mask,
                           advantages=torch.tensor([1.0, -1.0], dtype=dtype), entropy=obj.entropy_from_logits(logits),
                           guided_logp=guided if method == "tgpo" else guided.detach(), guidance_weight=0.3,
                           teacher_logp=torch.full_like(logp, teacher_value), off_policy=torch.tensor([True, False]))
        loss = obj.method_loss(method, x, obj.LossConfig()).loss
        assert torch.isfinite(loss), (method, teacher_value)
        assert torch.isfinite(grad_of(loss, logits)).all(), (method, teacher_value)


# ---------------------------------------------------------------------------- clipping (§1)
@given(seed=seeds, eps=st.floats(0.05, 0.5))
def test_clipping_zeroes_gradient_exactly_where_spec_says(seed, eps):
    gen = torch.Generator().manual_seed(seed)
    logp = (torch.randn(4, 6, generator=gen) - 2).requires_grad_(True)
    old = logp.detach() + torch.randn(4, 6, generator=gen) * 0.5
    adv = torch.randn(4, 6, generator=gen)
    mask = torch.ones(4, 6, dtype=torch.bool)
    x = obj.LossInputs(logp=logp, old_logp=old, advantages=adv, mask=mask, entropy=torch.zeros_like(logp))
    out = obj.method_loss("grpo", x, obj.LossConfig(clip_eps=eps, entropy_coef=0.0))
    g = grad_of(out.loss, logp)
    ratio = torch.exp(logp.detach() - old)
    clipped = ((adv > 0) & (ratio > 1 + eps)) | ((adv < 0) & (ratio < 1 - eps))
    assert (g[clipped] == 0).all()
    assert (g[~clipped] != 0).all()
    torch.testing.assert_close(g[~clipped], (-adv * ratio / mask.sum())[~clipped])
    torch.testing.assert_close(out.metrics["clip_ratio/region_mean"], clipped.float().mean())
    # a token with A = 0 has no gradient from either branch: it is never counted as clipped
    x = obj.LossInputs(logp=logp, old_logp=old, advantages=torch.zeros_like(adv), mask=mask, entropy=torch.zeros_like(logp))
    assert obj.method_loss("grpo", x, obj.LossConfig(clip_eps=eps)).metrics["clip_ratio/region_mean"] == 0

# ----------------------------------------------------------------------------- group advantages
group_rewards = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=2, max_size=8)


@given(rewards=group_rewards, shift=st.floats(-100, 100), scale=st.floats(0.1, 50))
def test_group_advantages_invariant_to_shift_and_positive_scale(rewards, shift, scale):
    r = torch.tensor(rewards * 2)  # two groups
    g = len(rewards)
    base = obj.group_advantages(r, g)
    assume(float(torch.tensor(rewards).std()) > 1e-2)
    torch.testing.assert_close(obj.group_advantages(r + shift, g), base, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(obj.group_advantages(r * scale, g), base, atol=1e-3, rtol=1e-3)


@given(rewards=st.lists(group_rewards, min_size=1, max_size=4).filter(lambda gs: len({len(x) for x in gs}) == 1))
def test_group_advantages_have_zero_mean_per_group(rewards):
    g = len(rewards[0])
    adv = obj.group_advantages(torch.tensor([x for grp in rewards for x in grp]), g)
    torch.testing.assert_close(adv.view(-1, g).mean(1), torch.zeros(len(rewards)), atol=1e-4, rtol=0)


@given(groups=st.lists(st.lists(st.sampled_from([0.0, 0.01, 0.02, 1.0, 3.0]), min_size=2, max_size=2), min_size=1,
                       max_size=3).map(lambda gs: [x for g in gs for x in g]) | st.lists(
           st.sampled_from([0.0, 0.01, 1.0, 5.0]), min_size=4, max_size=12).filter(lambda r: len(r) % 4 == 0),
       scale=st.sampled_from(["group", "batch", "none"]))
def test_group_advantages_match_the_oracle(groups, scale):
    """Several groups with different rewards (also rewards a hundredth apart, where the 1e-6 of ``std + eps`` shows),
    groups of 2 and of 4, every reward scaling: the formula of docs/method.md §1, computed naively in float64."""
    g = 2 if len(groups) <= 6 and len(groups) % 4 else 4
    got = obj.group_advantages(torch.tensor(groups, dtype=torch.float64), g, scale=scale)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, oracles.group_advantages(groups, g, scale), rtol=1e-5, atol=1e-6)


def test_group_advantages_of_one_rollout_are_zero_and_keep_a_float_dtype():
    for scale in ("group", "batch", "none"):
        assert torch.equal(obj.group_advantages(torch.tensor([3.0]), 1, scale=scale), torch.zeros(1))
        assert torch.equal(obj.group_advantages(torch.tensor([1.0, 0.0]), 1, scale=scale), torch.zeros(2))
    ints = obj.group_advantages(torch.tensor([1, 0, 0, 0]), 4)
    assert ints.dtype == torch.float32
    torch.testing.assert_close(ints, obj.group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4))
    assert obj.entropy_from_logits(torch.zeros(2, 5, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_group_advantages_of_one_rollout_warn_about_nothing():
    """A group (or batch) of one rollout has no std to take: its advantage is 0 without computing one, so torch's
    "degrees of freedom <= 0" warning (an error here) never reaches the user's log."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for scale in ("group", "batch"):
            assert torch.equal(obj.group_advantages(torch.tensor([3.0]), 1, scale=scale), torch.zeros(1))


def test_group_advantages_match_spec_formula():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std(unbiased=True)
    expected = (r - 0.25) / (std + 1e-6)
    torch.testing.assert_close(obj.group_advantages(r, 4), expected)
    with pytest.raises(ValueError, match="group_size"):
        obj.group_advantages(torch.ones(5), 4)


# ------------------------------------------------------------------------------------ schedule
@given(
    initial=st.floats(1e-5, 1.0),
    decay=st.floats(1e-7, 1e-2),
    min_frac=st.floats(0.0, 0.9),
    steps=st.integers(1, 5000),
)
def test_guidance_schedule(initial, decay, min_frac, steps):
    minimum = initial * min_frac
    weights = [obj.guidance_weight(k, initial, decay, minimum) for k in range(1, steps + 1)]
    assert weights[0] == initial
    assert all(b <= a for a, b in zip(weights, weights[1:]))
    assert min(weights) >= minimum
    k_min = 1 + math.ceil((initial - minimum) / decay)  # first step at which the formula reaches the floor
    if k_min <= steps:
        assert weights[k_min - 1] == pytest.approx(minimum, abs=1e-12)
    if k_min - 2 >= 0 and k_min - 2 < steps:
        assert weights[k_min - 2] > minimum or weights[k_min - 2] == pytest.approx(minimum, abs=1e-12)


def test_paper_schedule_ends_guidance_at_step_201():
    assert obj.guidance_weight(1) == 2e-3
    assert obj.guidance_weight(200) > 0
    assert obj.guidance_weight(201) == 0.0
    assert obj.guidance_weight(300) == 0.0
    with pytest.raises(ValueError, match="1-based"):
        obj.guidance_weight(0)


# ------------------------------------------------------------------------------ new options: TGPO-Adv
@given(seed=seeds, weight=st.floats(0.0, 1.0))
def test_tgpo_adv_advantages_add_a_bounded_bonus_toward_the_teachers_token(seed, weight):
    logits, sampled, yT, mask = make_rollout(seed)
    guided = gather_logp(logits, yT).detach()
    adv = torch.randn(logits.shape[0], generator=torch.Generator().manual_seed(seed))
    tok = obj.tgpo_adv_advantages(adv, guided, mask, weight)
    expected = adv.unsqueeze(1) + weight * torch.exp(guided)  # A[i] + lambda * exp(lp_old_g)
    torch.testing.assert_close(tok[mask], expected.expand_as(tok)[mask])
    assert (tok[~mask] == 0).all()
    bonus = (tok - adv.unsqueeze(1))[mask]
    assert (bonus >= 0).all() and (bonus <= weight + 1e-6).all()
    if weight == 0:
        torch.testing.assert_close(tok[mask], adv.unsqueeze(1).expand_as(tok)[mask])
    # the bound holds for any input, e.g. a rounding error that puts a log-prob above 0
    above = obj.tgpo_adv_advantages(adv, guided.abs() + 0.5, mask, weight) - adv.unsqueeze(1)
    torch.testing.assert_close(above[mask], torch.full_like(above[mask], weight))


@given(seed=seeds, weight=st.floats(1e-3, 1.0))
def test_tgpo_adv_entry_gradient_matches_a_naive_full_logit_computation(seed, weight):
    logits, sampled, yT, mask = make_rollout(seed)
    gen = torch.Generator().manual_seed(seed)
    adv = torch.randn(logits.shape[0], generator=gen)
    old_shift = 0.1 * torch.randn(mask.shape, generator=gen)
    entropy_coef = 0.0

    def entry(z):
        logp, guided = gather_logp(z, sampled), gather_logp(z, yT)
        x = obj.LossInputs(logp=logp, old_logp=logp.detach() + old_shift, advantages=adv, mask=mask,
                           entropy=obj.entropy_from_logits(z), guided_logp=guided.detach(), guidance_weight=weight)
        return obj.method_loss("tgpo_adv", x, obj.LossConfig(entropy_coef=entropy_coef)).loss

    def naive(z):  # the clipped surrogate written out token by token, with the per-token advantage
        logp = torch.log_softmax(z, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        p_teacher = torch.softmax(z, -1).gather(-1, yT.unsqueeze(-1)).squeeze(-1).detach()
        a = adv.unsqueeze(1) + weight * p_teacher
        ratio = torch.exp(logp - (logp.detach() + old_shift))
        per_token = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.2))
        return (per_token * mask).sum() / mask.sum()

    z1, z2 = logits.detach().clone().requires_grad_(True), logits.detach().clone().requires_grad_(True)
    l1, l2 = entry(z1), naive(z2)
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(grad_of(l1, z1), grad_of(l2, z2))


@pytest.mark.parametrize("weight", [0.0, 0.3])
def test_tgpo_names_its_terms_for_the_guidance_share(weight):
    """TGPO-Reg hands its policy-gradient and guidance terms (with their graphs) to the trainer's guidance-share
    diagnostic; they add up to its loss without the entropy bonus."""
    _, kw, cfg = case(12, "tgpo", weight=weight, entropy_coef=0.0)
    out = entry("tgpo", kw, cfg, obj.Aggregation())
    assert set(out.terms) == ({"pg", "guidance"} if weight else {"pg"})
    assert all(t.requires_grad for t in out.terms.values())
    torch.testing.assert_close(sum(out.terms.values()), out.loss)
    torch.testing.assert_close(out.terms["pg"], entry("grpo", kw, cfg, obj.Aggregation()).loss)


def test_a_method_resolves_unset_aggregation_settings():
    """Unset (None) loss_type: the method's own aggregation, its row mean unless set; a set loss_type with an unset
    row mean: TRL's (True)."""
    spec = obj.Method(loss=obj.grpo, label="X", aggregation=("dr_grpo", False))
    assert spec.resolve_aggregation(None, None) == ("dr_grpo", False)
    assert spec.resolve_aggregation(None, True) == ("dr_grpo", True)
    assert spec.resolve_aggregation("dapo", None) == ("dapo", True)
    assert spec.resolve_aggregation("dr_grpo", False) == ("dr_grpo", False)


def test_method_names_are_case_blind_and_old_names_warn():
    assert obj.canonical_method("GRPO") == "grpo" and obj.canonical_method("nope") == "nope"
    with pytest.warns(FutureWarning) as caught:
        assert obj.canonical_method("KDRL_Reference") == "kdrl_authors"
    assert str(caught[0].message) == ("method 'kdrl_reference' is deprecated; use 'kdrl_authors' (the old name goes in "
                                      "the next release)")
    assert obj.method_choices() == [*obj.METHODS, *obj.ALIASES]


@pytest.mark.parametrize("method", ["tgpo", "tgpo_adv"])
def test_guided_methods_without_the_teachers_tokens_are_grpo(method):
    """A step whose batch has no teacher pass (``guided_logp`` None, e.g. scored after the schedule ended) is GRPO's
    step, whatever the weight."""
    logits, kw, cfg = case(8, method)
    kw["guided_logp"] = None
    got, grpo = entry(method, kw, cfg, obj.Aggregation()), entry("grpo", kw, cfg, obj.Aggregation())
    assert torch.equal(got.loss, grpo.loss) and set(got.metrics) == set(grpo.metrics)


def test_tgpo_adv_with_zero_weight_is_grpo_and_the_registry_knows_every_method():
    logits, sampled, yT, mask = make_rollout(7)
    logp = gather_logp(logits, sampled)
    x = obj.LossInputs(logp=logp, old_logp=logp.detach(), advantages=torch.tensor([1.0, -1.0, 0.5]), mask=mask,
                       entropy=torch.zeros_like(logp), guided_logp=gather_logp(logits, yT).detach(), guidance_weight=0.0)
    cfg = obj.LossConfig()
    assert torch.equal(obj.method_loss("tgpo_adv", x, cfg).loss, obj.method_loss("grpo", x, cfg).loss)
    assert list(obj.METHODS) == ["grpo", "luffy", "rkl", "kdrl", "kdrl_authors", "tgpo", "tgpo_adv"]
    with pytest.raises(ValueError, match="already registered"):
        obj.register("grpo", obj.grpo, label="again")
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        obj.method_loss("nope", x, cfg)


# ------------------------------------------------------------------------- new options: aggregation
KINDS = [obj.Aggregation("dapo"), obj.Aggregation("dr_grpo", padded_length=9),
         obj.Aggregation("dr_grpo", padded_length=9, row_mean=False), obj.Aggregation("grpo"), obj.Aggregation("bnpo")]


@given(seed=seeds, kind=st.sampled_from(range(len(KINDS))))
def test_aggregations_match_their_formulas(seed, kind):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(4, 6, generator=gen)
    mask = torch.arange(6).unsqueeze(0) < torch.tensor([[6], [3], [1], [5]])
    how = KINDS[kind]
    got = obj.aggregate(values, mask, how)
    m = mask.float()
    expected = {
        ("dapo", True): (values * m).sum() / m.sum(),
        ("dr_grpo", True): (values * m).sum() / (4 * 9),
        ("dr_grpo", False): (values * m).sum() / 9,
        ("grpo", True): ((values * m).sum(1) / m.sum(1)).mean(),
        ("bnpo", True): (values * m).sum() / m.sum(),
    }[(how.kind, how.row_mean)]
    torch.testing.assert_close(got, expected)


@given(seed=seeds, kind=st.sampled_from(["dapo", "dr_grpo_rows", "dr_grpo_sum", "grpo", "bnpo"]))
def test_micro_batches_add_up_to_the_whole_batch(seed, kind):
    """Split a batch into equal micro-batches as the trainer does: the pieces, with the aggregation's accumulation
    and token count, add up to the loss of the whole batch (exactly for the kinds that are means over the batch;
    grpo and bnpo average per micro-batch, so equal-sized micro-batches are needed, as TRL's are)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(8, 5, generator=gen)
    mask = torch.rand(8, 5, generator=gen) > 0.3
    mask[:, 0] = True
    n_tok = mask.sum()
    make = {
        "dapo": lambda acc: obj.Aggregation("dapo", num_tokens=n_tok, accumulation=acc),
        "dr_grpo_rows": lambda acc: obj.Aggregation("dr_grpo", padded_length=5, accumulation=acc),
        "dr_grpo_sum": lambda acc: obj.Aggregation("dr_grpo", padded_length=5, row_mean=False, accumulation=acc),
        "grpo": lambda acc: obj.Aggregation("grpo", accumulation=acc),
        "bnpo": lambda acc: obj.Aggregation("bnpo", accumulation=acc),
    }[kind]
    whole = obj.aggregate(values, mask, make(1))
    parts = sum(obj.aggregate(values[i:i + 2], mask[i:i + 2], make(4)) for i in range(0, 8, 2))
    if kind == "bnpo":  # a mean per micro-batch: equal to the whole only when token counts are equal
        expected = sum(obj.mean_tok(values[i:i + 2], mask[i:i + 2]) for i in range(0, 8, 2)) / 4
        torch.testing.assert_close(parts, expected)
    else:
        torch.testing.assert_close(parts, whole)


@pytest.mark.parametrize("kind", list(AGG_KINDS))
def test_aggregation_of_one_row_and_of_no_row(kind):
    """A micro-batch of one completion is reduced by the kind's own formula; one of no completion gives 0, not NaN."""
    values, mask = torch.tensor([[1.0, 2.0, 4.0]]), torch.tensor([[True, True, False]])
    expected = {"dapo": 1.5, "dr_grpo": 3 / 7, "dr_grpo_sum": 3 / 7, "grpo": 1.5, "bnpo": 1.5}[kind]
    assert obj.aggregate(values, mask, obj.Aggregation(**AGG_KINDS[kind])).item() == pytest.approx(expected)
    empty = obj.aggregate(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.bool), obj.Aggregation(**AGG_KINDS[kind]))
    assert empty.item() == 0.0


def test_padded_sum_is_independent_of_the_number_of_processes():
    """The authors' padded-length sum over the whole batch: P processes each see 1/P of the rows and their
    gradients are averaged, so each process's share is multiplied by P."""
    values, mask = torch.randn(6, 4), torch.ones(6, 4, dtype=torch.bool)
    whole = obj.aggregate(values, mask, obj.Aggregation("dr_grpo", padded_length=4, row_mean=False))
    shares = [obj.aggregate(values[i:i + 3], mask[i:i + 3],
                            obj.Aggregation("dr_grpo", padded_length=4, row_mean=False, world_size=2)) for i in (0, 3)]
    torch.testing.assert_close(sum(shares) / 2, whole)  # what data-parallel averaging computes


# ---------------------------------------------------------------- new options: advantages and clipping
@given(rewards=group_rewards)
def test_unscaled_advantages_are_reward_minus_group_mean(rewards):
    r = torch.tensor(rewards * 2)
    g = len(rewards)
    expected = r - r.view(-1, g).mean(1).repeat_interleave(g)
    flat = r.view(-1, g).max(1).values == r.view(-1, g).min(1).values
    expected = torch.where(flat.repeat_interleave(g), torch.zeros_like(expected), expected)
    torch.testing.assert_close(obj.group_advantages(r, g, scale="none"), expected, atol=1e-5, rtol=1e-5)


def test_batch_scaled_advantages_divide_by_the_batch_std():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    centred = r - r.view(-1, 4).mean(1).repeat_interleave(4)
    torch.testing.assert_close(obj.group_advantages(r, 4, scale="batch"), centred / (r.std() + 1e-6))
    with pytest.raises(ValueError, match="unknown reward scaling"):
        obj.group_advantages(r, 4, scale="rank")


@given(seed=seeds, low=st.floats(0.05, 0.3), high=st.floats(0.05, 0.5), delta=st.sampled_from([None, 1.5, 3.0]))
def test_asymmetric_clipping_and_delta_zero_gradient_exactly_where_they_bind(seed, low, high, delta):
    gen = torch.Generator().manual_seed(seed)
    logp = (torch.randn(4, 6, generator=gen) - 2).requires_grad_(True)
    old = logp.detach() + torch.randn(4, 6, generator=gen) * 0.6
    adv = torch.randn(4, 6, generator=gen)
    mask = torch.ones(4, 6, dtype=torch.bool)
    per_token, clipped = obj.surrogate(logp, old, adv, mask, low, high, delta)
    g = grad_of(obj.mean_tok(per_token, mask), logp)
    ratio = torch.exp(logp.detach() - old)
    expected_clipped = ((adv > 0) & (ratio > 1 + high)) | ((adv < 0) & (ratio < 1 - low))
    capped = (adv < 0) & (ratio > delta) if delta is not None else torch.zeros_like(expected_clipped)
    assert torch.equal(clipped, expected_clipped)
    assert (g[expected_clipped | capped] == 0).all()
    free = ~(expected_clipped | capped)
    torch.testing.assert_close(g[free], (-adv * ratio / mask.sum())[free])
