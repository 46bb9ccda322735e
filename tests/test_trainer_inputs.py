"""The trainer's batch before the loss: rewards and their weights, group advantages per mode and per process, LUFFY's
trace flags, and the teacher diagnostics over the tokens the student wrote.

Fast tests (one scored batch of a tiny model each, no training loop) that ``nox -s mutants`` runs against the
mutants of ``TGPOTrainer._generate_and_score_completions`` and ``_calculate_rewards`` (``[tool.mutmut]`` in
pyproject.toml); each asserts what the batch or a logged value must be, computed here from the batch itself.
"""

from unittest import mock

import pytest
import torch
from test_trainer import _rows, make_trainer, parity_reward

from tgpo import TGPOTrainer
from tgpo import objectives as obj


def _capture_rewards(trainer):
    """Record every ``rewards_per_func`` [N, n_funcs] the trainer computes; returns the list it appends to."""
    seen = []
    calculate = trainer._calculate_rewards
    trainer._calculate_rewards = lambda *a: seen.append(calculate(*a)) or seen[-1]
    return seen


def _score(trainer, repeats=4, train=True):
    trainer.model.train(train)
    return trainer._generate_and_score_completions([row for row in _rows() for _ in range(repeats)])


def test_reward_functions_receive_the_sampled_token_ids(tiny_pair, tmp_path):
    """TRL hands each reward function the completion's token ids (``completion_ids``); our override passes them on."""
    received = []

    def ids_reward(completions, completion_ids, **kwargs):
        received.extend(list(ids) for ids in completion_ids)
        return [float(len(ids) % 2) for ids in completion_ids]

    trainer = make_trainer(tiny_pair, tmp_path, "grpo", reward_funcs=(ids_reward,))
    batch = _score(trainer)
    assert len(received) == batch["completion_ids"].size(0)
    for ids, row, mask in zip(received, batch["completion_ids"], batch["completion_mask"]):
        assert ids == row[: int(mask.sum())].tolist()


def test_weighted_rewards_give_the_advantages(tiny_pair, tmp_path):
    """Two reward functions with weights 2 and 0.5: the advantage is the group advantage of the weighted sum."""

    def length_reward(completions, **kwargs):
        text = [c if isinstance(c, str) else c[0]["content"] for c in completions]
        return [float(len(t) % 3) for t in text]

    trainer = make_trainer(tiny_pair, tmp_path, "grpo", reward_funcs=(parity_reward, length_reward),
                           reward_weights=[2.0, 0.5], scale_rewards="none")
    seen = _capture_rewards(trainer)
    batch = _score(trainer)
    per_func = seen[-1]
    assert per_func.shape == (16, 2)
    expected = obj.group_advantages(per_func[:, 0] * 2.0 + per_func[:, 1] * 0.5, 4, scale="none")
    torch.testing.assert_close(batch["advantages"], expected)
    assert batch["advantages"].abs().sum() > 0


def test_evaluation_groups_have_the_eval_group_size(tiny_pair, tmp_path):
    """In evaluation a group is ``num_generations_eval`` rollouts, in training ``num_generations``."""
    trainer = make_trainer(tiny_pair, tmp_path, "grpo", num_generations_eval=2, per_device_eval_batch_size=8)
    seen = _capture_rewards(trainer)
    for train, group, other in ((True, 4, 2), (False, 2, 4)):
        batch = _score(trainer, repeats=group, train=train)
        rewards = seen[-1][:, 0]
        torch.testing.assert_close(batch["advantages"], obj.group_advantages(rewards, group))
        assert not torch.allclose(batch["advantages"], obj.group_advantages(rewards, other))  # the size shows


def test_each_process_keeps_the_advantages_of_its_own_rows(tiny_pair, tmp_path):
    """On process 1 of 3 the gathered rewards hold every process's rows in order; the batch keeps rows n..2n-1,
    whose groups are this process's own."""
    trainer = make_trainer(tiny_pair, tmp_path, "grpo")
    calculate, own = trainer._calculate_rewards, []

    def gathered(*args):
        own.append(calculate(*args))
        trainer._rewards_of_batch = torch.cat([1.0 - own[-1], own[-1], torch.zeros_like(own[-1])])  # processes 0, 1, 2
        return trainer._rewards_of_batch

    trainer._calculate_rewards = gathered
    with mock.patch.object(type(trainer.accelerator), "process_index", new_callable=mock.PropertyMock, return_value=1):
        batch = _score(trainer)
    torch.testing.assert_close(batch["advantages"], obj.group_advantages(own[-1][:, 0], 4))
    assert batch["advantages"].abs().sum() > 0


@pytest.mark.parametrize("method,train", [("grpo", True), ("luffy", False)])
def test_only_luffy_training_batches_carry_trace_flags(tiny_pair, tmp_path, method, train):
    """GRPO has no teacher traces, and LUFFY's evaluation batches are the student's own rollouts."""
    trainer = make_trainer(tiny_pair, tmp_path, method)
    batch = _score(trainer, train=train)
    assert "off_policy" not in batch
    assert "luffy/off_policy_reward" not in trainer._metrics["train" if train else "eval"]


def test_luffy_logs_the_mean_reward_of_the_teacher_traces(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "luffy")
    seen = _capture_rewards(trainer)
    batch = _score(trainer)
    rewards = seen[-1][:, 0]
    assert batch["off_policy"].tolist() == [False, False, False, True] * 4
    logged = trainer._metrics["train"]["luffy/off_policy_reward"]
    assert logged == [pytest.approx(rewards[3::4].mean().item())]
    assert rewards[3::4].mean() != rewards.mean()  # the traces' mean, not the batch's


def test_teacher_agreement_leaves_out_the_tokens_a_tool_wrote(tiny_pair, tmp_path):
    """With TRL's tool_mask (0 on tool-written tokens), the teacher diagnostics are means over the student's own
    tokens only, as the loss is."""
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo")

    def with_tool_tokens(prompts):
        prompt_ids, completion_ids, _, *rest = TGPOTrainer._generate(trainer, prompts)
        tool_mask = [[int(j % 3 != 1) for j in range(len(ids))] for ids in completion_ids]  # every third token
        return (prompt_ids, completion_ids, tool_mask, *rest)

    trainer._generate = with_tool_tokens
    batch = _score(trainer)
    own = (batch["completion_mask"] * batch["tool_mask"]).bool()
    assert own.sum() < batch["completion_mask"].sum()
    agree = (batch["teacher_argmax"] == batch["completion_ids"]).float()
    metrics = trainer._metrics["train"]
    assert metrics["teacher/argmax_agreement"][-1] == pytest.approx(agree[own].mean().item())
    assert metrics["teacher/sampled_logp"][-1] == pytest.approx(batch["teacher_logps"][own].mean().item(), abs=1e-6)
    everywhere = batch["teacher_logps"][batch["completion_mask"].bool()].mean().item()
    assert everywhere != pytest.approx(batch["teacher_logps"][own].mean().item(), abs=1e-6)


def test_a_served_teacher_logs_the_positions_it_could_not_restrict(tiny_pair, tmp_path):
    """A teacher behind a server counts the positions whose top-k held no id the student can emit; the trainer logs
    that count with every scored batch."""
    from tgpo.teacher import ServedTeacher

    class StandIn(ServedTeacher):  # the local teacher's scores, 3 unrestricted positions per batch
        def __init__(self, local):
            super().__init__("http://stand-in", trainer.model.config.vocab_size, client=object())
            self.local = local

        def score(self, *batch):
            self.unrestricted_positions += 3
            return self.local.score(*batch)

    trainer = make_trainer(tiny_pair, tmp_path, "tgpo")
    trainer.teacher = StandIn(trainer.teacher)
    batch = _score(trainer)
    assert "teacher_argmax" in batch
    assert trainer._metrics["train"]["teacher/unrestricted_positions"] == [3.0]


@pytest.mark.parametrize("method,updates", [("tgpo_adv", 2), ("tgpo_adv", 1), ("tgpo", 2), ("tgpo", 1), ("kdrl", 2)])
def test_the_rollout_policys_guided_logprobs_only_where_tgpo_adv_reads_them(tiny_pair, tmp_path, method, updates):
    """The extra forward for the rollout policy's lp_g happens only for TGPO-Adv with several updates per rollout
    batch (then the current policy moves away from the rollout policy); TGPO-Reg differentiates through the current
    lp_g, and KDRL reads no argmax."""
    trainer = make_trainer(tiny_pair, tmp_path, method, per_device_train_batch_size=16 // updates,
                           steps_per_generation=updates)
    batch = _score(trainer)
    assert ("old_per_token_logps" in batch) == (updates > 1)
    assert ("old_guided_logps" in batch) == (method == "tgpo_adv" and updates > 1)


def test_guidance_weight_stops_at_its_floor(tiny_pair, tmp_path):
    trainer = make_trainer(tiny_pair, tmp_path, "tgpo", guidance_weight=0.5, guidance_decay=0.1, guidance_min=0.2)
    assert [trainer.guidance_weight_at(k) for k in range(1, 6)] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.2])
