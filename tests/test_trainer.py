"""TGPOTrainer on tiny CPU models: every method trains, the guidance term is exact, resume and bad input."""

import math

import oracles
import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from tgpo import TGPOConfig, TGPOTrainer
from tgpo import objectives as obj
from tgpo.data import DataError
from tgpo.objectives import METHODS
from tgpo.teacher import VocabularyMismatchError, load_tokenizer


def _rows(chat=True, n=4):
    rows = []
    for i in range(n):
        problem = f"{i}+{i + 1}"
        prompt = [{"role": "user", "content": problem}] if chat else problem
        rows.append({"prompt": prompt, "answer": str(2 * i + 1), "teacher_completion": f"\\boxed{{{2 * i + 1}}}"})
    return Dataset.from_list(rows)


def parity_reward(completions, **kwargs):
    """A reward that varies inside groups of random tiny models (so advantages are not all zero)."""
    text = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [float(len(t) % 2) for t in text]


def make_args(tmp_path, method, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / f"out-{method}"),
        method=method,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        per_device_train_batch_size=16,
        num_generations=4,
        max_completion_length=12,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        guidance_weight=0.5,
        guidance_decay=0.1,
        entropy_coef=1e-3,  # the paper's bonus (TGPOConfig's default is TRL's 0.0)
        report_to="none",
        save_strategy="no",
        seed=0,
    )
    kwargs.update(overrides)
    return TGPOConfig(**kwargs)


def make_trainer(pair, tmp_path, method, dataset=None, reward_funcs=(parity_reward,), **overrides):
    student, teacher = pair
    return TGPOTrainer(
        str(student),
        reward_funcs=list(reward_funcs) if reward_funcs is not None else None,
        args=make_args(tmp_path, method, **overrides),
        train_dataset=dataset if dataset is not None else _rows(),
        teacher_model=str(teacher),
    )


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_two_steps(tiny_pair, tmp_path, method):
    spec = METHODS[method]
    trainer = make_trainer(tiny_pair, tmp_path, method)
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    clipped = () if spec.off_policy_traces else (  # LUFFY's surrogate is unclipped
        "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max",
        "clip_ratio/region_mean")
    for key in ("reward", "completions/mean_length", "grad_norm", "entropy", "policy_loss", "entropy_coef",
                "guidance_weight", *clipped):
        assert all(key in h and math.isfinite(h[key]) for h in logs), key
    teacher_keys = ("teacher/argmax_agreement", "teacher/sampled_logp")
    assert all(all(k in h for k in teacher_keys) == bool(spec.teacher) for h in logs)
    assert all(("guidance_loss" in h) == (method == "tgpo") for h in logs)
    assert all(("tipo_bonus" in h) == (method == "tgpo_adv") for h in logs)
    if spec.scheduled:
        assert [h["guidance_weight"] for h in logs] == pytest.approx([0.5, 0.4])
    changed = any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())
    assert changed


def test_plain_text_prompts_without_chat_template(tiny_plain_pair, tmp_path):
    trainer = make_trainer(tiny_plain_pair, tmp_path, "tgpo", dataset=_rows(chat=False))
    rows = [row for row in _rows(chat=False) for _ in range(4)]
    trainer.model.train()
    batch = trainer._generate_and_score_completions(rows)
    tok = trainer.processing_class
    prompts = tok.batch_decode(batch["prompt_ids"], skip_special_tokens=True)
    assert prompts == [r["prompt"] for r in rows]  # the raw text, no template around it
    trainer.train()
    assert trainer.state.global_step == 2
    assert all(math.isfinite(h["guidance_loss"]) for h in trainer.state.log_history if "loss" in h)


def _naive(trainer, batch):
    """Full-logit quantities of a batch: student logits, the student's lp of its samples and of the teacher's
    argmax, the teacher's argmax and its lp of the samples (at the trainer's temperatures), entropy, mask."""
    student, teacher = trainer.model, trainer.teacher.model if trainer.teacher is not None else None
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    T, mask = batch["completion_ids"].size(1), batch["completion_mask"]
    out = {"mask": mask}
    tau = trainer.args.temperature
    with torch.no_grad():
        s_logits = student(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1].float() / tau
        if teacher is not None:
            t_logits = teacher(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1].float()
            out["y_t"] = t_logits[..., : student.config.vocab_size].argmax(-1)
            t_logp = torch.log_softmax(t_logits / trainer.args.teacher_temperature, -1)
            out["lp_T"] = t_logp.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
            out["lp_g"] = torch.log_softmax(s_logits, -1).gather(-1, out["y_t"].unsqueeze(-1)).squeeze(-1)
    out["lp"] = torch.log_softmax(s_logits, -1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    out["H"] = obj.entropy_from_logits(s_logits)
    return out


def _batch(trainer):
    trainer.model.train()
    return trainer._generate_and_score_completions([row for row in _rows() for _ in range(4)])


def test_guidance_term_equals_naive_full_logits(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo")
    batch = _batch(trainer)
    loss = trainer._compute_loss(trainer.model, batch)
    logged = trainer._metrics["train"]["guidance_loss"][-1]
    n = _naive(trainer, batch)
    mask = n["mask"]
    assert logged == pytest.approx((-n["lp_g"])[mask.bool()].mean().item(), abs=1e-6)
    assert torch.equal(batch["teacher_argmax"][mask.bool()], n["y_t"][mask.bool()])

    # and the loss the trainer backpropagates is TGPO-Reg's with that term (old = current policy here)
    expected = oracles.loss("tgpo", logp=n["lp"], old_logp=n["lp"], advantages=batch["advantages"], mask=mask,
                            entropy=n["H"], guided_logp=n["lp_g"], weight=0.5)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_loss_gradient_equals_the_naive_gradient(tiny_pair, tmp_path):
    """The gradient the trainer backpropagates (TGPO-Reg: the surrogate against the detached rollout policy, the
    guidance term through the student's lp of the teacher's token, the entropy bonus) equals the oracle's gradient
    on full logits, parameter by parameter."""
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo")
    batch = _batch(trainer)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    got = torch.autograd.grad(trainer._compute_loss(trainer.model, batch), params, allow_unused=True)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    attn = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    T = batch["completion_ids"].size(1)
    logits = trainer.model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1].float() / trainer.args.temperature
    logp_all = torch.log_softmax(logits, -1)
    lp = logp_all.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    lp_g = logp_all.gather(-1, batch["teacher_argmax"].unsqueeze(-1)).squeeze(-1)
    expected = oracles.loss("tgpo", logp=lp, old_logp=lp.detach(), advantages=batch["advantages"],
                            mask=batch["completion_mask"], entropy=obj.entropy_from_logits(logits), guided_logp=lp_g,
                            weight=0.5)
    want = torch.autograd.grad(expected, params, allow_unused=True)
    for p, g, w in zip(params, got, want):
        g, w = (torch.zeros_like(p) if x is None else x.to(p.dtype) for x in (g, w))
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-4)
    assert any(g is not None and g.abs().sum() > 0 for g in got)


@pytest.mark.parametrize("method", ["grpo", "tgpo_adv"])
def test_several_updates_per_batch_read_the_rollout_policy(tiny_pair, tmp_path, method):
    """Two updates per rollout batch: after the first, the current policy differs from the rollout policy, and the
    loss reads TRL's old log-probs (and TGPO-Adv the rollout policy's lp_g) instead of the current ones."""
    trainer = make_trainer(tiny_pair, tmp_path, method, per_device_train_batch_size=8, steps_per_generation=2)
    batch = _batch(trainer)
    gen = torch.Generator().manual_seed(2)
    shape = batch["completion_mask"].shape
    batch["old_per_token_logps"] = batch["old_per_token_logps"] + 0.3 * torch.randn(shape, generator=gen)
    if method == "tgpo_adv":
        batch["old_guided_logps"] = batch["old_guided_logps"] - 0.5 * torch.rand(shape, generator=gen)
        x, _ = trainer._loss_inputs(trainer.model, batch)
        assert not x.guided_logp.requires_grad  # TGPO-Adv reads lp_g as a number, through no graph
    loss = trainer._compute_loss(trainer.model, batch)
    n = _naive(trainer, batch)
    expected = oracles.loss(method, logp=n["lp"], old_logp=batch["old_per_token_logps"], advantages=batch["advantages"],
                            mask=n["mask"], entropy=n["H"], guided_logp=n.get("lp_g"),
                            old_guided_logp=batch.get("old_guided_logps"), weight=0.5,
                            how=oracles.Agg(num_tokens=float(batch["num_items_in_batch"]) / 2))  # 2 steps per batch
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_tool_tokens_are_left_out_of_the_loss(tiny_pair, tmp_path):
    """TRL's tool_mask (0 on tokens a tool wrote) multiplies the completion mask: those tokens carry no loss."""
    trainer = make_trainer(tiny_pair, tmp_path, "grpo")
    batch = _batch(trainer)
    tool = (torch.rand(batch["completion_mask"].shape, generator=torch.Generator().manual_seed(1)) > 0.3).long()
    batch["tool_mask"] = tool
    loss = trainer._compute_loss(trainer.model, batch)
    n = _naive(trainer, batch)
    expected = oracles.loss("grpo", logp=n["lp"], old_logp=n["lp"], advantages=batch["advantages"],
                            mask=n["mask"] * tool, entropy=n["H"],
                            how=oracles.Agg(num_tokens=float(batch["num_items_in_batch"])))  # TRL's count, as scored
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("method", ["kdrl", "tgpo"])
def test_no_guided_logprobs_where_the_loss_reads_none(tiny_pair, tmp_path, method):
    """The student's lp of the teacher's argmax (an extra head pass) is computed only for a method that reads it and
    only while its weight is above 0, even when the batch carries the teacher's argmax."""
    trainer = make_trainer(tiny_pair, tmp_path, method)
    batch = _batch(trainer)
    assert "teacher_argmax" in batch
    if method == "tgpo":
        trainer.args.guidance_weight = 0.0  # the schedule has ended since the batch was scored
    x, hidden = trainer._loss_inputs(trainer.model, batch)
    assert x.guided_logp is None and not hidden


def test_trace_rows_are_the_last_of_each_group_across_processes(tiny_pair, tmp_path):
    """LUFFY: with 4 rollouts per group and 2 rows per process, process 1's rows are global rows 2 and 3."""
    from unittest import mock

    trainer = make_trainer(tiny_pair, tmp_path, "luffy")
    with mock.patch.object(type(trainer.accelerator), "process_index", new_callable=mock.PropertyMock, return_value=1):
        assert [trainer._is_trace_row(i, 2) for i in range(2)] == [False, True]
    assert [trainer._is_trace_row(i, 8) for i in range(8)] == [False, False, False, True] * 2


def test_tgpo_adv_loss_equals_naive_per_token_advantage(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo_adv")
    batch = _batch(trainer)
    loss = trainer._compute_loss(trainer.model, batch)
    n = _naive(trainer, batch)
    mask = n["mask"]
    adv = batch["advantages"].unsqueeze(1) + 0.5 * torch.exp(n["lp_g"])  # A[i] + lambda_1 * exp(lp_old_g)
    expected = oracles.loss("grpo", logp=n["lp"], old_logp=n["lp"], advantages=adv, mask=mask, entropy=n["H"])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert "guidance_loss" not in trainer._metrics["train"]  # no cross-entropy term


def test_tgpo_adv_reads_the_rollout_policy_with_several_updates_per_batch(tiny_pair, tmp_path):
    # two optimizer updates per rollout batch: TRL keeps the old log-probs, and lp_old_g is taken before any update
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo_adv", per_device_train_batch_size=8, steps_per_generation=2)
    batch = _batch(trainer)
    n = _naive(trainer, batch)
    mask = n["mask"].bool()
    torch.testing.assert_close(batch["old_guided_logps"][mask], n["lp_g"][mask], atol=1e-5, rtol=1e-5)


def test_rkl_loss_uses_per_token_advantages_from_the_rollout_policy(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "rkl")
    batch = _batch(trainer)
    assert "old_per_token_logps" not in batch  # one update per batch: the rollout policy is the current one
    loss = trainer._compute_loss(trainer.model, batch)
    n = _naive(trainer, batch)
    mask = n["mask"]
    torch.testing.assert_close(batch["teacher_logps"][mask.bool()], n["lp_T"][mask.bool()], atol=1e-5, rtol=1e-5)
    expected = oracles.loss("rkl", logp=n["lp"], old_logp=n["lp"], advantages=batch["advantages"], mask=mask,
                            entropy=n["H"], teacher_logp=n["lp_T"])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_teacher_logprobs_use_the_rollout_temperature_by_default(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "kdrl", temperature=0.6)
    assert trainer.args.teacher_temperature == 0.6 and trainer.teacher.temperature == 0.6
    batch = _batch(trainer)
    n = _naive(trainer, batch)
    mask = n["mask"].bool()
    torch.testing.assert_close(batch["teacher_logps"][mask], n["lp_T"][mask], atol=1e-5, rtol=1e-5)
    at_one = make_trainer(tiny_pair, tmp_path, "kdrl", temperature=0.6, teacher_temperature=1.0)
    assert at_one.teacher.temperature == 1.0


@pytest.mark.parametrize("row_mean", [True, False])
def test_dr_grpo_aggregation_is_honoured(tiny_pair, tmp_path, row_mean):
    trainer = make_trainer(tiny_pair, tmp_path, "grpo", loss_type="dr_grpo", dr_grpo_row_mean=row_mean,
                           scale_rewards="none")
    batch = _batch(trainer)
    loss = trainer._compute_loss(trainer.model, batch)
    n = _naive(trainer, batch)
    mask, L = n["mask"], trainer.args.max_completion_length
    per_token, _ = obj.surrogate(n["lp"], n["lp"], batch["advantages"], mask)
    pg = (per_token * mask).sum() / (L * (mask.size(0) if row_mean else 1))
    expected = pg + obj.entropy_bonus(n["H"], mask, 1e-3)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("loss_type", ["dapo", "dr_grpo"])
def test_aggregation_counts_the_tokens_of_one_optimizer_step(tiny_pair, tmp_path, loss_type):
    """Two optimizer steps per generation batch, two micro-batches per step: the dapo denominator is one step's token
    count (TRL's num_items_in_batch counts the whole generation batch), the per-micro-batch kinds divide by the
    accumulation; in evaluation one batch is the whole batch."""
    trainer = make_trainer(tiny_pair, tmp_path, "grpo", per_device_train_batch_size=4, gradient_accumulation_steps=2,
                           steps_per_generation=4, loss_type=loss_type, dr_grpo_row_mean=False)
    trainer.model.train()
    how = trainer._aggregation({"num_items_in_batch": torch.tensor(100.0)})
    assert (how.kind, how.padded_length, how.row_mean, how.accumulation, how.world_size) == (loss_type, 12, False, 2, 1)
    assert float(how.num_tokens) == 50.0
    trainer.model.eval()
    how = trainer._aggregation({"num_items_in_batch": torch.tensor(0.0)})
    assert (how.accumulation, float(how.num_tokens)) == (1, 1.0)  # an empty batch: a denominator of 1, never 0
    # on 2 processes TRL's count covers both: each process's share of it, and the world size for the padded sum
    from unittest import mock

    with mock.patch.object(type(trainer.accelerator), "num_processes", new_callable=mock.PropertyMock, return_value=2):
        trainer.model.train()
        how = trainer._aggregation({"num_items_in_batch": torch.tensor(100.0)})
    assert (float(how.num_tokens), how.world_size) == (25.0, 2)


def test_guidance_weight_follows_rollout_batches_and_is_zero_without_a_schedule(tiny_pair, tmp_path):
    """lambda_k counts rollout batches: the two optimizer steps of one batch share k; GRPO has no schedule."""
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo", per_device_train_batch_size=8, steps_per_generation=2)
    assert trainer.args.updates_per_generation == 2
    a = trainer.args
    expected = [obj.guidance_weight(k, a.guidance_weight, a.guidance_decay, a.guidance_min) for k in (1, 1, 2, 2, 3)]
    assert [trainer.guidance_weight_at(step) for step in range(1, 6)] == expected
    assert make_trainer(tiny_pair, tmp_path, "grpo").guidance_weight_at(1) == 0.0


def test_luffy_defaults_to_the_authors_padded_length_sum(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "luffy")
    assert (trainer.args.loss_type, trainer.args.dr_grpo_row_mean) == ("dr_grpo", False)
    batch = _batch(trainer)
    loss = trainer._compute_loss(trainer.model, batch)
    n = _naive(trainer, batch)
    mask = n["mask"]
    per_token = obj.luffy_per_token(n["lp"], n["lp"], batch["advantages"], mask, batch["off_policy"])
    expected = per_token.sum() / trainer.args.max_completion_length + obj.entropy_bonus(n["H"], mask, 1e-3)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_vllm_importance_sampling_correction_is_honoured(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "kdrl")
    batch = _batch(trainer)
    weights = torch.rand(batch["completion_ids"].shape, generator=torch.Generator().manual_seed(0)) + 0.5
    batch["importance_sampling_ratio"] = weights
    plain = trainer._compute_loss(trainer.model, batch).item()
    trainer.use_vllm, trainer.vllm_importance_sampling_correction = True, True  # as after a vLLM rollout
    corrected = trainer._compute_loss(trainer.model, batch).item()
    n = _naive(trainer, batch)
    mask = n["mask"]
    expected = oracles.loss("kdrl", logp=n["lp"], old_logp=n["lp"], advantages=batch["advantages"], mask=mask,
                            entropy=n["H"], teacher_logp=n["lp_T"], is_weights=weights, beta=trainer.args.kdrl_beta)
    assert corrected == pytest.approx(expected.item(), abs=1e-6)
    assert corrected != pytest.approx(plain, abs=1e-6)


def test_agreement_per_token_class_and_guidance_share_are_logged(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo", log_guidance_share=True,
                           agreement_token_classes={"content": "[0-9]", "style": "[^0-9]+"})
    batch = _batch(trainer)
    trainer._compute_loss(trainer.model, batch)
    metrics = trainer._metrics["train"]
    mask = batch["completion_mask"].bool()
    agree = batch["teacher_argmax"] == batch["completion_ids"]
    tok = trainer.processing_class
    digits = torch.tensor([[tok.convert_ids_to_tokens(int(i)).isdigit() for i in row] for row in batch["completion_ids"]])
    if (mask & digits).any():
        assert metrics["teacher/argmax_agreement/content"][-1] == pytest.approx(agree[mask & digits].float().mean().item())
    assert metrics["teacher/argmax_agreement/style"][-1] == pytest.approx(agree[mask & ~digits].float().mean().item())
    share = metrics["guidance/grad_share"][-1]
    assert math.isfinite(share) and share > 0
    # the share scales with lambda: the same batch at half the weight gives half the share
    trainer.args.guidance_weight = 0.25
    trainer._compute_loss(trainer.model, batch)
    assert metrics["guidance/grad_share"][-1] == pytest.approx(share / 2, rel=1e-4)


@pytest.mark.parametrize("scale", ["group", "none"])
def test_advantages_follow_spec(tiny_pair, tmp_path, scale):
    trainer = make_trainer(tiny_pair, tmp_path, "grpo", scale_rewards=scale)
    seen = []
    calculate = trainer._calculate_rewards
    trainer._calculate_rewards = lambda *a: seen.append(calculate(*a)) or seen[-1]
    batch = _batch(trainer)
    rewards = seen[-1][:, 0].clone()
    torch.testing.assert_close(batch["advantages"], obj.group_advantages(rewards, 4, scale=scale))
    if scale == "none":
        torch.testing.assert_close(batch["advantages"], rewards - rewards.view(-1, 4).mean(1).repeat_interleave(4))
    assert trainer._rewards_of_batch is None  # kept only during the call


def test_luffy_replaces_one_rollout_per_group(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "luffy")
    trainer.model.train()
    rows = [row for row in _rows() for _ in range(4)]
    batch = trainer._generate_and_score_completions(rows)
    assert batch["off_policy"].tolist() == [False, False, False, True] * 4
    tok = trainer.processing_class
    for i in (3, 7):
        n = int(batch["completion_mask"][i].sum())
        assert tok.decode(batch["completion_ids"][i, :n], skip_special_tokens=True) == rows[i]["teacher_completion"]
    assert "teacher_argmax" not in batch  # LUFFY needs no teacher forward


class _StopAfter(TrainerCallback):
    """Simulates a kill: raises once `step` optimizer steps are done (their checkpoint already written)."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("killed")


def test_kill_and_resume_keeps_step_count_and_schedule(tiny_pair, tmp_path):
    common = dict(max_steps=4, save_strategy="steps", save_steps=1, guidance_decay=0.1)
    full = make_trainer(tiny_pair, tmp_path / "full", "tgpo", **common)
    full.train()
    full_weights = [h["guidance_weight"] for h in full.state.log_history if "loss" in h]

    killed = make_trainer(tiny_pair, tmp_path / "killed", "tgpo", **common)
    killed.add_callback(_StopAfter(2))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = make_trainer(tiny_pair, tmp_path / "killed", "tgpo", **common)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == full.state.global_step == 4
    resumed_weights = [h["guidance_weight"] for h in resumed.state.log_history if "loss" in h]
    assert resumed_weights == pytest.approx(full_weights)
    assert full_weights == pytest.approx([0.5, 0.4, 0.3, 0.2])
    assert [h["step"] for h in resumed.state.log_history if "loss" in h] == [1, 2, 3, 4]


def test_teacher_pass_skipped_once_guidance_weight_is_zero(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo", guidance_weight=0.1, guidance_decay=0.1, max_steps=3)
    calls = []
    score = trainer.teacher.score
    trainer.teacher.score = lambda *a: calls.append(1) or score(*a)
    trainer.train()
    assert len(calls) == 1  # only step 1 has a weight > 0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["guidance_weight"] for h in logs] == pytest.approx([0.1, 0.0, 0.0])


class _PoisonTeacherAfterFirstSave(TrainerCallback):
    """After checkpoint-1, the teacher's weights turn NaN: step 2's KDRL penalty (and loss) is NaN."""

    def __init__(self, teacher):
        self.teacher = teacher

    def on_save(self, args, state, control, **kwargs):
        with torch.no_grad():
            for p in self.teacher.parameters():
                p.fill_(float("nan"))


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tiny_pair, tmp_path):
    from safetensors.torch import load_file

    trainer = make_trainer(tiny_pair, tmp_path, "kdrl", max_steps=3, save_strategy="steps", save_steps=1)
    trainer.add_callback(_PoisonTeacherAfterFirstSave(trainer.teacher.model))
    with pytest.raises(FloatingPointError, match=r"step 2, method 'kdrl'"):
        trainer.train()
    out = tmp_path / "out-kdrl"
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]
    weights = load_file(out / "checkpoint-1" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_vocabulary_mismatch_is_one_clear_error(tiny_pair, tmp_path):
    from tgpo.testing import CHARS, build_tokenizer, save_model

    bad_teacher = save_model(tmp_path / "bad_teacher", build_tokenizer(chars=list(reversed(CHARS))))
    with pytest.raises(VocabularyMismatchError, match=r"first: id \d+: student '.*' vs teacher"):
        make_trainer((tiny_pair[0], bad_teacher), tmp_path, "tgpo")


def test_bad_inputs_give_clear_errors(tiny_pair, tmp_path):
    with pytest.raises(DataError, match="no 'answer' column"):
        make_trainer(tiny_pair, tmp_path, "grpo", dataset=_rows().remove_columns("answer"), reward_funcs=None)
    with pytest.raises(DataError, match="is empty"):
        make_trainer(tiny_pair, tmp_path, "grpo", dataset=_rows().select([]))
    with pytest.raises(DataError, match="no 'teacher_completion' column"):
        make_trainer(tiny_pair, tmp_path, "luffy", dataset=_rows().remove_columns("teacher_completion"))
    with pytest.raises(FileNotFoundError, match="student model path '.*missing'"):
        make_trainer((tmp_path / "missing", tiny_pair[1]), tmp_path, "grpo")
    with pytest.raises(FileNotFoundError, match="teacher model path '.*missing'"):
        make_trainer((tiny_pair[0], tmp_path / "missing"), tmp_path, "rkl")
    with pytest.raises(ValueError, match="needs a teacher"):
        TGPOTrainer(str(tiny_pair[0]), reward_funcs=[parity_reward], args=make_args(tmp_path, "kdrl"), train_dataset=_rows())
    with pytest.raises(ValueError, match="beta=0.1 is not supported"):
        make_args(tmp_path, "kdrl", beta=0.1)
    with pytest.raises(ValueError, match="method='nope'"):
        make_args(tmp_path, "nope")


def test_default_reward_is_math_correct_against_answer():
    from tgpo.rewards import strict_boxed_reward as boxed_reward

    got = boxed_reward([[{"role": "assistant", "content": "so \\boxed{7}"}], "\\boxed{8}"], answer=["7", "7"])
    assert got == [1.0, 0.0]


def test_processing_class_default_loads_custom_tokenizer_exactly(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "grpo")
    expected = load_tokenizer(tiny_pair[0])
    assert trainer.processing_class("\\boxed{1}")["input_ids"] == expected("\\boxed{1}")["input_ids"]


def test_authors_v3_reward_needs_a_closed_think_and_no_box():
    from tgpo.rewards import REWARD_FUNCTIONS, authors_v3_reward

    assert set(REWARD_FUNCTIONS) == {"boxed", "authors_v3"}
    got = authors_v3_reward(
        ["I think 7.</think> The answer is $7$.",   # closed think, loose answer after it: 1
         "I think 7. The answer is $7$.",             # no </think>: 0
         "</think> so \\boxed{7}",                    # boxed after the think: 1
         "scratch 7 </think> The answer is $8$.",     # the number before </think> does not count: 0
         [{"role": "assistant", "content": "ok</think>\\frac{14}{2}"}]],  # chat messages, an equivalent form: 1
        answer=["7"] * 5)
    assert got == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_authors_v3_reward_trains(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "grpo", reward_funcs=None, reward="authors_v3", max_steps=1)
    trainer.train()
    assert trainer.state.global_step == 1 and "rewards/authors_v3_reward/mean" in trainer.state.log_history[0]


def test_guidance_share_is_measured_every_k_steps(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo", log_guidance_share=True, guidance_share_every=3,
                           guidance_decay=0.0)
    batch = _batch(trainer)
    measured = []
    for step in range(7):  # global_step = optimizer steps done; step k+1 is being computed
        trainer.state.global_step = step
        before = len(trainer._metrics["train"]["guidance/grad_share"])
        trainer._compute_loss(trainer.model, batch)
        measured.append(len(trainer._metrics["train"]["guidance/grad_share"]) > before)
    assert measured == [True, False, False, True, False, False, True]  # steps 1, 4, 7


@pytest.mark.parametrize("temperature, softcap, bias", [(1.0, None, False), (0.6, None, True), (0.7, 5.0, True)])
def test_second_target_shares_the_fused_log_sum_exp(temperature, softcap, bias):
    from tgpo.head import second_target_logps

    g = torch.Generator().manual_seed(0)
    B, T, H, V = 3, 5, 8, 50
    hidden = torch.randn(B, T, H, generator=g, dtype=torch.float64).requires_grad_(True)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(V, generator=g, dtype=torch.float64).requires_grad_(True) if bias else None
    sampled, target = torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)

    def naive_logp(ids):
        z = hidden @ weight.T + (0 if b is None else b)
        z = z if softcap is None else softcap * torch.tanh(z / softcap)
        return torch.log_softmax(z / temperature, -1).gather(-1, ids[..., None]).squeeze(-1)

    lp = naive_logp(sampled)
    got = second_target_logps(lp, hidden, weight, b, target, sampled, temperature, softcap)
    want = naive_logp(target)
    assert torch.allclose(got, want.float(), atol=1e-5)
    params = [hidden, weight] + ([b] if bias else [])
    w = torch.randn(B, T, generator=g, dtype=torch.float64)
    got_grads = torch.autograd.grad((got * w).sum(), params, retain_graph=True)
    want_grads = torch.autograd.grad((want * w).sum(), params)
    for x, y in zip(got_grads, want_grads):
        assert torch.allclose(x, y, atol=1e-5)


def test_guided_logp_needs_no_second_head_pass(tiny_pair, tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils

    calls = []
    fused = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", lambda *a: calls.append(1) or fused(*a))
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo")
    batch = _batch(trainer)
    calls.clear()
    trainer._compute_loss(trainer.model, batch).backward()
    assert len(calls) == 1  # the student's fused head, once: lp, entropy and lp_g


def test_teacher_chunks_are_chosen_from_the_device_and_the_formula(tiny_pair, tmp_path):
    from tgpo.teacher import DEFAULT_CHUNK_TOKENS, choose_teacher_chunks, teacher_pass_peak_bytes

    # default "auto" on this CPU: the tiny pass fits, so no row or position chunks
    trainer = make_trainer(tiny_pair, tmp_path, "rkl")
    assert (trainer.teacher.chunk_size, trainer.teacher.chunk_tokens) == (None, None)
    assert "no row or position chunks" in trainer.teacher_chunks_reason
    # an explicit value is kept
    trainer = make_trainer(tiny_pair, tmp_path, "rkl", teacher_chunk_size=2)
    assert (trainer.teacher.chunk_size, trainer.teacher.chunk_tokens) == (2, None)
    # a budget the whole pass exceeds: head tiles, then the most rows that fit
    cfg = {"vocab_size": 152064, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 512}
    def peak(rows, tokens):
        return teacher_pass_peak_bytes(rows, 1024, 152064, 256, tokens, layer_width=2816, prompt_len=64, dtype_bytes=2)

    budget = peak(2, DEFAULT_CHUNK_TOKENS) + 1
    rows, tokens, why = choose_teacher_chunks(cfg, 8, 1024, prompt_len=64, dtype_bytes=2, device="cuda",
                                              budget_bytes=budget)
    assert (rows, tokens) == (2, DEFAULT_CHUNK_TOKENS) and "(fits)" in why and peak(8, None) > budget
