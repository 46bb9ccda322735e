"""Property-based tests of every objective in ``tgpo.objectives`` (docs/method.md §1–2).

"Divergent regime" = teacher log-probs of the student's sampled tokens of -20 or less. Gradients are taken
with respect to the student's logits ``z`` (a leaf tensor), as a real model's LM head would see them.
"""

from __future__ import annotations

import math

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


# -------------------------------------------------------------------------------- TGPO vs GRPO
@given(seed=seeds)
def test_tgpo_with_zero_weight_is_exactly_grpo(seed):
    logits, sampled, yT, mask = make_rollout(seed)
    logp, guided = gather_logp(logits, sampled), gather_logp(logits, yT)
    old = logp.detach() + 0.1 * torch.randn_like(logp)
    adv = torch.randn(logits.shape[0])
    grpo = obj.policy_loss(logp, old, adv, mask)
    tgpo = obj.tgpo_loss(logp, old, adv, guided, mask, weight=0.0)
    assert torch.equal(grpo, tgpo)
    assert torch.equal(grad_of(grpo, logits), grad_of(tgpo, logits))


@given(seed=seeds, weight=st.floats(1e-4, 1.0))
def test_tgpo_adds_weighted_guidance(seed, weight):
    logits, sampled, yT, mask = make_rollout(seed)
    logp, guided = gather_logp(logits, sampled), gather_logp(logits, yT)
    adv = torch.randn(logits.shape[0])
    total = obj.tgpo_loss(logp, logp.detach(), adv, guided, mask, weight)
    expected = obj.policy_loss(logp, logp.detach(), adv, mask) + weight * obj.guidance_loss(guided, mask)
    torch.testing.assert_close(total, expected)


# ------------------------------------------------------------------------------ guidance gradient
@given(seed=seeds)
def test_guidance_gradient_is_softmax_minus_onehot_over_token_count(seed):
    logits, _, yT, mask = make_rollout(seed)
    loss = obj.guidance_loss(gather_logp(logits, yT), mask)
    n_tok = mask.sum()
    expected = (torch.softmax(logits, -1) - torch.nn.functional.one_hot(yT, logits.shape[-1])) / n_tok
    expected = expected * mask.unsqueeze(-1)
    torch.testing.assert_close(grad_of(loss, logits), expected.detach(), atol=1e-6, rtol=1e-5)


@given(seed=seeds, divergence=st.floats(0.0, 60.0))
def test_guidance_step_raises_teacher_token_for_any_divergence(seed, divergence):
    """However far the student is from the teacher (teacher token pushed down by ``divergence`` nats), one
    small SGD step on the guidance loss raises the teacher token's probability at every real position."""
    logits, _, yT, mask = make_rollout(seed)
    with torch.no_grad():
        logits.scatter_add_(-1, yT.unsqueeze(-1), torch.full_like(yT, -divergence, dtype=logits.dtype).unsqueeze(-1))
    before = gather_logp(logits, yT).detach()
    g = grad_of(obj.guidance_loss(gather_logp(logits, yT), mask), logits)
    after = gather_logp(logits - 0.5 * g, yT)
    assert (after[mask] > before[mask]).all() or divergence > 50  # float32 underflow of exp(-60) is allowed
    assert (after[mask] >= before[mask]).all()


@given(seed=seeds, teacher_logp=st.floats(-1e6, 0.0))
def test_guidance_gradient_norm_bounded_whatever_the_teacher_logprob(seed, teacher_logp):
    """The guidance gradient never sees the teacher's log-prob of the student's token: per position its
    norm is at most sqrt(2) / N_tok (the norm of softmax - onehot)."""
    logits, sampled, yT, mask = make_rollout(seed)
    g = grad_of(obj.guidance_loss(gather_logp(logits, yT), mask), logits)
    per_position = g.norm(dim=-1)
    assert (per_position <= math.sqrt(2) / mask.sum() + 1e-7).all()
    # the RKL gradient at the same positions scales with |teacher_logp| instead
    lp = gather_logp(logits, sampled)
    rkl_adv = obj.rkl_advantages(torch.full_like(lp, teacher_logp), lp, mask)
    g_rkl = grad_of(obj.policy_loss(lp, lp.detach(), rkl_adv, mask), logits)
    if teacher_logp < -1e3:
        assert g_rkl.norm() > g.norm()


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


@given(seed=seeds)
def test_rkl_step_pushes_down_samples_and_never_toward_the_teacher(seed):
    logits, sampled, yT, mask = make_rollout(seed)
    logp = gather_logp(logits, sampled)
    assume((logp > -20).all())
    adv = obj.rkl_advantages(divergent_teacher_logp(seed, logp.shape), logp, mask)
    g = grad_of(obj.policy_loss(logp, logp.detach(), adv, mask), logits)
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
        adv = obj.rkl_advantages(torch.full_like(logp, teacher_logp), logp, mask)
        return grad_of(obj.policy_loss(logp, logp.detach(), adv, mask), logits).norm().item()

    norms = [norm_at(-a) for a in (20.0, 40.0, 80.0, 160.0)]
    assert all(b > a for a, b in zip(norms, norms[1:]))
    slopes = [(norms[i + 1] - norms[i]) / d for i, d in enumerate((20.0, 40.0, 80.0))]
    assert max(slopes) == pytest.approx(min(slopes), rel=1e-3)  # affine in |lp_T|


# ----------------------------------------------------------------------------------- KL estimators
@given(seed=seeds)
def test_k1_gradient_ignores_teacher_k2_k3_do_not(seed):
    logits, sampled, _, mask = make_rollout(seed)
    # teachers near the student: in the divergent regime k3's gradient 1 - exp(-d) rounds to 1 in float32
    t1 = gather_logp(logits, sampled).detach() - torch.rand(sampled.shape, generator=torch.Generator().manual_seed(seed)) * 3
    t2 = t1 - 0.5
    grads = {}
    for est in ("k1", "k2", "k3"):
        grads[est] = [
            grad_of(obj.kl_penalty(gather_logp(logits, sampled), t, mask, est), logits) for t in (t1, t2)
        ]
    assert torch.equal(grads["k1"][0], grads["k1"][1])
    assert not torch.allclose(grads["k2"][0], grads["k2"][1])
    assert not torch.allclose(grads["k3"][0], grads["k3"][1])


@given(seed=seeds)
def test_k2_gradient_is_log_ratio_times_grad_logp(seed):
    logits, sampled, _, mask = make_rollout(seed)
    logp = gather_logp(logits, sampled).detach().requires_grad_(True)
    teacher = divergent_teacher_logp(seed, logp.shape)
    g = grad_of(obj.kl_penalty(logp, teacher, mask, "k2"), logp)
    expected = (logp.detach() - teacher) * mask / mask.sum()
    torch.testing.assert_close(g, expected)


@given(seed=seeds)
def test_kl_estimator_values(seed):
    logits, sampled, _, mask = make_rollout(seed)
    logp = gather_logp(logits, sampled).detach()
    teacher = logp - torch.rand_like(logp) * 3
    d = (logp - teacher)[mask]
    torch.testing.assert_close(obj.kl_penalty(logp, teacher, mask, "k1"), d.mean())
    torch.testing.assert_close(obj.kl_penalty(logp, teacher, mask, "k2"), (d**2 / 2).mean())
    torch.testing.assert_close(obj.kl_penalty(logp, teacher, mask, "k3"), (torch.exp(-d) + d - 1).mean())


def test_kdrl_variants_are_opposite_in_sign_and_estimator():
    logits, sampled, _, mask = make_rollout(3)
    logp = gather_logp(logits, sampled)
    teacher = divergent_teacher_logp(3, logp.shape)
    correct = obj.kdrl_penalty(logp, teacher, mask, beta=0.5)
    authors = obj.kdrl_reference_penalty(logp, teacher, mask, beta=0.5)
    torch.testing.assert_close(correct, 0.5 * obj.kl_penalty(logp, teacher, mask, "k2"))
    torch.testing.assert_close(authors, -0.5 * obj.kl_penalty(logp, teacher, mask, "k1"))
    assert correct > 0 and authors < 0  # minimising the authors' term *raises* the estimated KL
    with pytest.raises(ValueError, match="k4"):
        obj.kl_penalty(logp, teacher, mask, "k4")


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


@given(value=st.floats(-5, 5), group_size=st.integers(1, 8), seed=seeds)
def test_equal_rewards_give_zero_advantage_and_zero_policy_gradient(value, group_size, seed):
    adv = obj.group_advantages(torch.full((group_size,), value), group_size)
    assert torch.equal(adv, torch.zeros(group_size))
    logits, sampled, _, mask = make_rollout(seed, batch=group_size)
    logp = gather_logp(logits, sampled)
    g = grad_of(obj.policy_loss(logp, logp.detach() + 0.3, adv, mask), logits)
    assert torch.equal(g, torch.zeros_like(g))


def test_group_advantages_match_spec_formula():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std(unbiased=True)
    expected = (r - 0.25) / (std + 1e-6)
    torch.testing.assert_close(obj.group_advantages(r, 4), expected)
    with pytest.raises(ValueError, match="group_size"):
        obj.group_advantages(torch.ones(5), 4)


# ---------------------------------------------------------------------------- clipping and masks
@given(seed=seeds, eps=st.floats(0.05, 0.5))
def test_clipping_zeroes_gradient_exactly_where_spec_says(seed, eps):
    gen = torch.Generator().manual_seed(seed)
    logp = (torch.randn(4, 6, generator=gen) - 2).requires_grad_(True)
    old = logp.detach() + torch.randn(4, 6, generator=gen) * 0.5
    adv = torch.randn(4, 6, generator=gen)
    mask = torch.ones(4, 6, dtype=torch.bool)
    g = grad_of(obj.policy_loss(logp, old, adv, mask, clip_eps=eps), logp)
    ratio = torch.exp(logp.detach() - old)
    clipped = ((adv > 0) & (ratio > 1 + eps)) | ((adv < 0) & (ratio < 1 - eps))
    assert (g[clipped] == 0).all()
    assert (g[~clipped] != 0).all()
    torch.testing.assert_close(g[~clipped], (-adv * ratio / mask.sum())[~clipped])
    frac = obj.clip_fraction(logp, old, adv, mask, clip_eps=eps)
    torch.testing.assert_close(frac, clipped.float().mean())


def all_losses(logp, old, teacher, guided, entropy, mask, adv_seq):
    adv_tok = obj.rkl_advantages(teacher, old, mask)
    off = torch.zeros(logp.shape[0], dtype=torch.bool)
    off[0] = True
    return {
        "grpo": obj.policy_loss(logp, old, adv_seq, mask),
        "rkl": obj.policy_loss(logp, old, adv_tok, mask),
        "tgpo": obj.tgpo_loss(logp, old, adv_seq, guided, mask, 0.3),
        "guidance": obj.guidance_loss(guided, mask),
        "kdrl_k2": obj.kdrl_penalty(logp, teacher, mask, 0.1, "k2"),
        "kdrl_k3": obj.kdrl_penalty(logp, teacher, mask, 0.1, "k3"),
        "kdrl_reference": obj.kdrl_reference_penalty(logp, teacher, mask, 0.1),
        "entropy": obj.entropy_bonus(entropy, mask, 0.01),
        "luffy": obj.luffy_loss(logp, old, adv_seq, mask, off),
    }


@given(seed=seeds, junk=st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30, -7.0]))
def test_masked_positions_never_change_loss_or_gradient(seed, junk):
    logits, sampled, yT, mask = make_rollout(seed)
    assume((~mask).any())
    gen = torch.Generator().manual_seed(seed)
    base = {
        "logp": gather_logp(logits, sampled).detach(),
        "old": gather_logp(logits, sampled).detach() + 0.1 * torch.randn(mask.shape, generator=gen),
        "teacher": divergent_teacher_logp(seed, mask.shape),
        "guided": gather_logp(logits, yT).detach(),
        "entropy": torch.rand(mask.shape, generator=gen),
    }
    adv = torch.randn(mask.shape[0], generator=gen)

    def run(values):
        leaves = {k: v.clone().requires_grad_(k in ("logp", "guided", "entropy")) for k, v in values.items()}
        out = all_losses(leaves["logp"], leaves["old"], leaves["teacher"], leaves["guided"], leaves["entropy"], mask, adv)
        grads = {}
        for name, loss in out.items():
            gs = torch.autograd.grad(loss, [leaves["logp"], leaves["guided"], leaves["entropy"]], allow_unused=True, retain_graph=True)
            grads[name] = [torch.zeros_like(mask, dtype=torch.float32) if x is None else x for x in gs]
        return out, grads

    clean_out, clean_grads = run(base)
    dirty = {k: torch.where(mask, v, torch.full_like(v, junk)) for k, v in base.items()}
    dirty_out, dirty_grads = run(dirty)
    for name in clean_out:
        assert torch.equal(clean_out[name], dirty_out[name]), name
        for a, b in zip(clean_grads[name], dirty_grads[name]):
            assert torch.equal(a, b), name


def test_all_masked_batch_gives_zero_loss_and_zero_gradient():
    logits, sampled, yT, _ = make_rollout(0)
    mask = torch.zeros(sampled.shape, dtype=torch.bool)
    logp, guided = gather_logp(logits, sampled), gather_logp(logits, yT)
    teacher = torch.full_like(logp, -30.0)
    out = all_losses(logp, logp.detach(), teacher, guided, torch.ones_like(logp), mask, torch.ones(3))
    for name, loss in out.items():
        assert loss.item() == 0.0, name
        g = grad_of(loss, logits)
        assert torch.isfinite(g).all() and (g == 0).all(), name


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


# --------------------------------------------------------------------------------- extreme inputs
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("logit_scale", [1e4, -1e4])
def test_extreme_inputs_stay_finite(dtype, logit_scale):
    gen = torch.Generator().manual_seed(0)
    logits = (torch.sign(torch.randn(2, 4, 7, generator=gen)) * logit_scale).to(dtype).requires_grad_(True)
    sampled = torch.randint(0, 7, (2, 4), generator=gen)
    yT = (sampled + 1) % 7
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 2:] = False
    logp, guided = gather_logp(logits, sampled), gather_logp(logits, yT)
    for teacher_value in (-1e9, 0.0):
        teacher = torch.full_like(logp, teacher_value)
        out = all_losses(logp, torch.full_like(logp, -1e9), teacher, guided, obj.entropy_from_logits(logits), mask,
                         torch.tensor([1.0, -1.0], dtype=dtype))
        for name, loss in out.items():
            assert torch.isfinite(loss), (name, teacher_value)
            assert torch.isfinite(grad_of(loss, logits)).all(), (name, teacher_value)


# ------------------------------------------------------------------------------ new options: TGPO-Adv
@given(seed=seeds, weight=st.floats(0.0, 1.0))
def test_tipo_advantages_add_a_bounded_bonus_toward_the_teachers_token(seed, weight):
    logits, sampled, yT, mask = make_rollout(seed)
    guided = gather_logp(logits, yT).detach()
    adv = torch.randn(logits.shape[0], generator=torch.Generator().manual_seed(seed))
    tok = obj.tipo_advantages(adv, guided, mask, weight)
    expected = adv.unsqueeze(1) + weight * torch.exp(guided)  # A[i] + lambda * exp(lp_old_g)
    torch.testing.assert_close(tok[mask], expected.expand_as(tok)[mask])
    assert (tok[~mask] == 0).all()
    bonus = (tok - adv.unsqueeze(1))[mask]
    assert (bonus >= 0).all() and (bonus <= weight + 1e-6).all()
    if weight == 0:
        torch.testing.assert_close(tok[mask], adv.unsqueeze(1).expand_as(tok)[mask])


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
