"""``TGPOTrainer``: TRL's ``GRPOTrainer`` with TGPO and its baselines as objectives (SPEC §1–2).

The methods share TRL's loop (sampling, rewards, batching, checkpoints, logging) and differ only in the objective
taken from :mod:`tgpo.objectives`. Four hooks are overridden, each for one reason:

* ``_calculate_rewards`` — keep the raw rewards, so advantages follow SPEC (``std + 1e-6``, flat group -> 0);
* ``_generate`` — LUFFY: the dataset's teacher trace replaces the last rollout of each group *before* TRL scores,
  masks and tokenises the group, so rewards and masks of the mixed group come from TRL's own code;
* ``_generate_and_score_completions`` — SPEC's advantages, the teacher pass, RKL's per-token advantages;
* ``_compute_loss`` — one student forward (TRL's fused head gives ``lp`` and entropy; its hidden states give
  TGPO's ``lp_g``) and the method's loss.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from trl import GRPOTrainer

from . import objectives as obj
from .config import TGPOConfig
from .data import validate_dataset
from .teacher import LocalTeacher, ServedTeacher, check_vocabularies, load_teacher, load_tokenizer

logger = logging.getLogger(__name__)

__all__ = ["TGPOTrainer", "math_reward"]


def _text(completion) -> str:
    """A completion as text: TRL gives a string (plain prompts) or assistant messages (chat prompts)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion)


def math_reward(completions, answer, **kwargs) -> list[float]:
    """SPEC's verifiable reward: 1.0 if ``tgpo.scoring.math_correct`` accepts the completion's final answer."""
    from .scoring import math_correct  # imported lazily: the grader spins up Math-Verify workers

    return [float(math_correct(_text(c), str(a))) for c, a in zip(completions, answer, strict=True)]


class TGPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with ``args.method`` in ``grpo | tgpo | rkl | kdrl | kdrl_reference | luffy``.

    Takes ``GRPOTrainer``'s arguments plus ``teacher_model`` (a model or a folder; needed by tgpo, rkl, kdrl and
    kdrl_reference) and ``teacher_processing_class`` (the teacher's tokenizer, for the vocabulary check when
    ``teacher_model`` is an instance not loaded from a folder). Without ``reward_funcs`` the reward is
    :func:`math_reward` against the dataset's ``answer`` column.
    """

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: TGPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        teacher_model=None,
        teacher_processing_class=None,
        **kwargs,
    ):
        if args is None or not isinstance(args, TGPOConfig):
            raise TypeError("TGPOTrainer needs args=TGPOConfig(...) (it chooses the method)")
        if isinstance(model, (str, Path)):
            if not Path(model).exists():
                raise FileNotFoundError(f"student model path {str(model)!r} does not exist")
            model = str(model)
            processing_class = processing_class or load_tokenizer(model)  # AutoProcessor would rebuild custom ones
        if train_dataset is not None:
            validate_dataset(
                train_dataset, "train_dataset", need_answer=reward_funcs is None, need_teacher=args.method == "luffy"
            )
        super().__init__(
            model,
            reward_funcs=reward_funcs if reward_funcs is not None else [math_reward],
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        self.teacher = self._build_teacher(teacher_model, teacher_processing_class) if args.needs_teacher else None
        self._last_rewards_per_func = None
        self._generation_rows = None

    # ------------------------------------------------------------------------------------------ set-up
    def _build_teacher(self, teacher_model, teacher_tokenizer):
        student_rows = self.accelerator.unwrap_model(self.model).get_output_embeddings().weight.shape[0]
        if self.args.teacher_server_url:
            return self._build_served_teacher(teacher_model, teacher_tokenizer, student_rows)
        if teacher_model is None:
            raise ValueError(
                f"method {self.args.method!r} needs a teacher: pass teacher_model (a model or a path) or set "
                "teacher_server_url"
            )
        if isinstance(teacher_model, (str, Path)):
            teacher_model, teacher_tokenizer = load_teacher(teacher_model, trust_remote_code=self.args.trust_remote_code)
        elif teacher_tokenizer is None and Path(getattr(teacher_model.config, "_name_or_path", "") or "-").is_dir():
            teacher_tokenizer = load_tokenizer(teacher_model.config._name_or_path)
        teacher_rows = teacher_model.get_input_embeddings().weight.shape[0]
        if teacher_tokenizer is not None:
            check_vocabularies(self._tokenizer, teacher_tokenizer, teacher_rows)
        else:
            check_vocabularies(self._tokenizer, self._tokenizer, teacher_rows)  # embedding size only
            logger.warning("teacher given without a tokenizer: only its embedding size was checked against the student")
        return LocalTeacher(teacher_model.to(self.accelerator.device), student_rows, self.args.teacher_chunk_size)

    def _build_served_teacher(self, teacher_model, teacher_tokenizer, student_rows: int) -> ServedTeacher:
        # The served teacher's weights live in the vLLM server; teacher_model (a folder), if given, names its
        # tokenizer for the vocabulary check.
        if isinstance(teacher_model, (str, Path)) and Path(teacher_model).is_dir() and teacher_tokenizer is None:
            teacher_tokenizer = load_tokenizer(teacher_model)
        if teacher_tokenizer is not None:
            check_vocabularies(self._tokenizer, teacher_tokenizer)
        else:
            logger.warning("served teacher without a local tokenizer folder: vocabularies not checked (run `tgpo align`)")
        a = self.args
        return ServedTeacher(a.teacher_server_url, student_rows, top_logprobs=a.teacher_server_top_logprobs,
                             chunk_size=a.teacher_server_chunk_size, timeout=a.teacher_server_timeout)

    def guidance_weight_at(self, step: int) -> float:
        """TGPO's ``lambda_k`` at optimizer step ``step`` (1-based); 0 for every other method.

        ``k`` counts training steps (rollout batches), as the authors' loop does: the ``updates_per_generation``
        optimizer updates of one rollout batch (PPO mini-batches) share one weight. With one update per batch
        (TRL's default) ``k == step``.
        """
        if self.args.method != "tgpo":
            return 0.0
        a = self.args
        k = (step - 1) // a.updates_per_generation + 1
        return obj.guidance_weight(k, a.guidance_weight, a.guidance_decay, a.guidance_min)

    @property
    def current_guidance_weight(self) -> float:
        # The step being computed is global_step + 1, also right after a resume (global_step comes from the checkpoint).
        return self.guidance_weight_at(self.state.global_step + 1)

    @property
    def _accumulation(self) -> int:
        # Set by Trainer's loop; outside it (a direct _compute_loss call) the configured value.
        return getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)

    def _num_tokens(self, inputs) -> torch.Tensor:
        """Tokens of one optimizer step on this process, as TRL's ``dapo`` normalises, so accumulation is exact."""
        n = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        if self.model.training:
            n = n * self._accumulation / self.args.steps_per_generation
        return n

    def _metric(self, name: str, value) -> None:
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][name].append(float(value))

    # ----------------------------------------------------------------------------------- TRL hooks
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Keep the raw rewards: TRL's advantages use eps 1e-4; SPEC's are recomputed from these.
        self._last_rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._last_rewards_per_func

    def _generate(self, prompts):
        # LUFFY only: put the dataset's teacher trace in place of the last rollout of each group, before TRL
        # builds masks, rewards and old log-probs for the group (it sees only prompts, so the rows were kept).
        out = super()._generate(prompts)
        if self.args.method != "luffy" or not self.model.training:
            return out
        prompt_ids, completion_ids, tool_mask, completions, logprobs, *rest = out
        completion_ids, completions = list(completion_ids), list(completions)
        offset = self.accelerator.process_index * len(prompts)
        G, eos, max_len = self.num_generations, self._tokenizer.eos_token_id, self.args.max_completion_length
        off_policy = torch.zeros(len(prompts), dtype=torch.bool)
        for i, row in enumerate(self._generation_rows):
            if (offset + i) % G != G - 1:
                continue
            trace = row["teacher_completion"]
            ids = self._tokenizer(trace, add_special_tokens=False)["input_ids"] + [eos]
            completion_ids[i] = ids[:max_len]
            completions[i] = trace if isinstance(completions[i], str) else [{"role": "assistant", "content": trace}]
            if logprobs is not None:
                logprobs[i] = [float("nan")] * len(completion_ids[i])  # no sampler log-prob for a dataset trace
            if tool_mask is not None:
                tool_mask[i] = [1] * len(completion_ids[i])
            off_policy[i] = True
        self._off_policy = off_policy
        return (prompt_ids, completion_ids, tool_mask, completions, logprobs, *rest)

    def _generate_and_score_completions(self, inputs):
        # Adds SPEC's advantages, the teacher pass and LUFFY's off-policy flags to TRL's batch (batch-first tensors
        # survive TRL's shuffle and split into micro-batches).
        self._generation_rows = inputs
        out = super()._generate_and_score_completions(inputs)
        train = self.model.training
        device = out["completion_ids"].device
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]

        G = self.num_generations if train else self.num_generations_eval
        rewards = (self._last_rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        local = slice(self.accelerator.process_index * len(inputs), (self.accelerator.process_index + 1) * len(inputs))
        out["advantages"] = obj.group_advantages(rewards, G)[local]
        if self.args.method == "luffy" and train:
            out["off_policy"] = self._off_policy.to(device)
            self._metric("luffy/off_policy_reward", rewards[local][self._off_policy.to(device)].mean())

        weight = self.current_guidance_weight
        self._metric("guidance_weight", weight)
        needs_teacher = self.teacher is not None and (self.args.method != "tgpo" or weight > 0)
        if needs_teacher:
            argmax, teacher_logp = self.teacher.score(
                out["prompt_ids"], out["prompt_mask"], out["completion_ids"], out["completion_mask"]
            )
            out["teacher_argmax"], out["teacher_logps"] = argmax, teacher_logp
            self._metric("teacher/argmax_agreement", obj.mean_tok((argmax == out["completion_ids"]).float(), mask))
            self._metric("teacher/sampled_logp", obj.mean_tok(teacher_logp, mask))

        if self.args.method == "rkl":
            if "old_per_token_logps" not in out:  # TRL skips it when each batch is used for one update only
                with torch.no_grad():
                    out["old_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                        self.model,
                        torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1),
                        torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1),
                        out["completion_ids"].size(1),
                        batch_size=self.args.per_device_train_batch_size,
                    )
            out["advantages"] = obj.rkl_advantages(out["teacher_logps"], out["old_per_token_logps"], mask)
        return out

    @contextlib.contextmanager
    def _capture_hidden(self, model, enabled: bool):
        """Keep the backbone's last hidden states of the next forward (TGPO needs the student's log-prob of the
        teacher's token, which TRL's fused head does not compute) — one student forward serves both."""
        captured = []
        if not enabled:
            yield captured
            return
        backbone = self.accelerator.unwrap_model(model)
        backbone = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
        handle = backbone.base_model.register_forward_hook(lambda m, a, o: captured.append(o.last_hidden_state))
        try:
            yield captured
        finally:
            handle.remove()

    def _target_logps(self, model, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``log softmax(lm_head(hidden) / temperature)[targets]`` with TRL's chunked kernel (no ``B x T x V``)."""
        from trl.kernels import ChunkedLogProbFunction

        lm = self.accelerator.unwrap_model(model)
        lm = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        head, cfg = lm.get_output_embeddings(), lm.config.get_text_config()
        if any(getattr(cfg, k, None) is not None for k in ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")):
            raise NotImplementedError("TGPO guidance does not support models with scaled logits yet")
        if self.args.cast_lm_head_to_fp32:
            hidden = hidden.float()
        logps = ChunkedLogProbFunction.apply(
            hidden.reshape(-1, hidden.size(-1)),
            head.weight,
            head.bias,
            targets.reshape(-1),
            self.temperature,
            32768,
            getattr(cfg, "final_logit_softcapping", None),
            1.0,
            ("log_probs",),
        )[0]
        return logps.view(targets.shape)

    def _compute_loss(self, model, inputs):
        # The method's objective from tgpo.objectives, on one student forward; every token mean is over the
        # optimizer step's tokens (num_tokens), so gradient accumulation gives the full-batch gradient.
        method, a = self.args.method, self.args
        completion_ids = inputs["completion_ids"]
        T = completion_ids.size(1)
        mask = inputs["completion_mask"] * inputs["tool_mask"] if "tool_mask" in inputs else inputs["completion_mask"]
        weight = self.current_guidance_weight
        guided = method == "tgpo" and weight > 0 and "teacher_argmax" in inputs
        with self._capture_hidden(model, guided) as hidden:
            logp, entropy, _ = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([inputs["prompt_ids"], completion_ids], dim=1),
                torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
                T,
                compute_entropy=True,
            )
        old_logp = inputs.get("old_per_token_logps")
        old_logp = logp.detach() if old_logp is None else old_logp
        adv, n = inputs["advantages"], self._num_tokens(inputs)

        if method == "luffy":
            off = inputs.get("off_policy", torch.zeros(len(adv), dtype=torch.bool, device=adv.device))
            accumulation = self._accumulation if self.model.training else 1
            loss = obj.luffy_loss(logp, old_logp, adv, mask, off) / accumulation
        elif method == "tgpo":
            guided_logp = self._target_logps(model, hidden[0][:, -T - 1 : -1], inputs["teacher_argmax"]) if guided else logp
            loss = obj.tgpo_loss(logp, old_logp, adv, guided_logp, mask, weight if guided else 0.0, a.epsilon, num_tokens=n)
            if guided:
                self._metric("guidance_loss", obj.guidance_loss(guided_logp.detach(), mask))
        else:  # grpo, rkl (per-token advantages), kdrl, kdrl_reference
            loss = obj.policy_loss(logp, old_logp, adv, mask, a.epsilon, num_tokens=n)
            if method == "kdrl":
                loss = loss + obj.kdrl_penalty(logp, inputs["teacher_logps"], mask, a.kdrl_beta, a.kdrl_estimator, num_tokens=n)
            elif method == "kdrl_reference":
                loss = loss + obj.kdrl_reference_penalty(logp, inputs["teacher_logps"], mask, a.kdrl_beta, num_tokens=n)
        loss = loss + obj.entropy_bonus(entropy, mask, a.entropy_coef, num_tokens=n)

        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss ({loss.item()}) at step {self.state.global_step + 1}, method {method!r}; "
                f"stopped before the update, the last good checkpoint in {a.output_dir} is kept"
            )
        self._metric("entropy", obj.mean_tok(entropy.detach(), mask))
        self._metric("clip_fraction", obj.clip_fraction(logp, old_logp, adv, mask, a.epsilon))
        if method in ("kdrl", "kdrl_reference", "rkl"):
            self._metric("teacher/kl_k1", obj.mean_tok(logp.detach() - inputs["teacher_logps"], mask))
        return loss
