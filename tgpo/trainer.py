"""``TGPOTrainer``: TRL's ``GRPOTrainer`` with TGPO and its baselines as objectives (docs/method.md §1–2).

The methods share TRL's loop (sampling, rewards, batching, checkpoints, logging) and differ only in their entry in
:data:`tgpo.objectives.METHODS`. The trainer turns TRL's batch into :class:`~tgpo.objectives.LossInputs` once per
micro-batch and calls :func:`~tgpo.objectives.method_loss`. Four TRL hooks are overridden, each for one reason:

* ``_calculate_rewards`` — keep the raw rewards of the current batch, so advantages follow the paper
  (``std + 1e-6``; TRL's own use ``1e-4``) with the configured ``scale_rewards``;
* ``_generate`` — LUFFY: the dataset's teacher trace replaces the last rollout of each group *before* TRL scores,
  masks and tokenises the group, so rewards and masks of the mixed group come from TRL's own code;
* ``_generate_and_score_completions`` — the paper's advantages, the teacher pass, LUFFY's off-policy flags and
  (TGPO-Adv with several updates per rollout batch) the rollout policy's log-prob of the teacher's tokens;
* ``_compute_loss`` — one student forward (TRL's fused head gives ``lp`` and the entropy; ``lp_g`` shares its
  log-sum-exp, :mod:`tgpo.head`) and the method's loss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import signal
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import get_config_model_id

from . import objectives as obj
from .checkpoints import mark_complete
from .config import TGPOConfig
from .data import DataError, MissingColumnError, validate_dataset
from .guards import ContinueSchedule, NumericGuard, nonfinite_parameters
from .head import second_target_logps
from .hub import ModelNotFoundError, resolve_model
from .rewards import REWARD_FUNCTIONS
from .teacher import (
    AUTO,
    LocalTeacher,
    ServedTeacher,
    check_vocabularies,
    choose_teacher_chunks,
    load_teacher,
    load_tokenizer,
    memory_budget_bytes,
)

logger = logging.getLogger(__name__)

__all__ = ["GracefulStop", "TGPOTrainer", "as_tgpo_config", "default_method"]

def _prompt_key(prompt) -> str:
    """A stable key of a prompt (text or chat messages), to find its dataset row again."""
    return hashlib.sha1(json.dumps(prompt, sort_keys=True, default=str).encode()).hexdigest()


def default_method(teacher_model=None, args=None) -> str:
    """The method of a ``TGPOTrainer`` whose ``args`` do not choose one (``None`` or TRL's ``GRPOConfig``).

    ``"grpo"`` — TRL's own objective, so that replacing ``GRPOTrainer`` by ``TGPOTrainer`` changes nothing — unless
    a teacher is given (``teacher_model`` or ``teacher_server_url``): then ``"tgpo"`` (TGPO-Reg), the method the suite
    is about, which is also ``TGPOConfig``'s own default (a ``TGPOConfig`` is a request for the suite's methods).
    docs/method.md §7 lists what else differs from TRL.
    """
    return "tgpo" if teacher_model is not None or getattr(args, "teacher_server_url", None) else "grpo"


def as_tgpo_config(args, model, teacher_model=None) -> TGPOConfig:
    """``args`` as a :class:`TGPOConfig`: itself; TRL's ``GRPOConfig`` converted field by field; or, for ``None``, the
    default TRL builds (output folder ``<model name>-GRPO``), with :func:`default_method`."""
    if isinstance(args, TGPOConfig):
        return args
    method = default_method(teacher_model, args)
    if args is None:
        name = model if isinstance(model, (str, Path)) else get_config_model_id(model.config)
        name = str(name).rstrip("/").split("/")[-1]
        return TGPOConfig(f"{name}-{method.upper()}", method=method)
    if isinstance(args, GRPOConfig):
        return TGPOConfig.from_grpo_config(args, method=method)
    raise TypeError(f"TGPOTrainer: args must be a TGPOConfig or TRL's GRPOConfig, got {type(args).__name__}")


class TGPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with ``args.method`` one of :data:`tgpo.objectives.METHODS`.

    Takes ``GRPOTrainer``'s arguments plus ``teacher_model`` (a model, a folder or a Hub id; needed by the methods
    that read a teacher) and ``teacher_processing_class`` (the teacher's tokenizer, for the vocabulary check when
    ``teacher_model`` is an instance not loaded from a folder). ``args`` may be a :class:`TGPOConfig`, TRL's
    ``GRPOConfig`` or ``None`` (:func:`as_tgpo_config`, :func:`default_method`). Models named by a string are resolved
    as TRL does (:func:`tgpo.hub.resolve_model`). Without ``reward_funcs`` the reward is ``args.reward``
    (:data:`tgpo.rewards.REWARD_FUNCTIONS`) against the dataset's ``answer`` column, with a warning (TRL refuses to
    train without a reward).
    """

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: TGPOConfig | GRPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        teacher_model=None,
        teacher_processing_class=None,
        **kwargs,
    ):
        args = as_tgpo_config(args, model, teacher_model)
        spec = obj.METHODS[args.method]
        if isinstance(model, (str, Path)):
            model = resolve_model(model, "student model")
            processing_class = processing_class or load_tokenizer(model)  # AutoProcessor would rebuild custom ones
        if isinstance(teacher_model, (str, Path)) and not args.teacher_server_url:
            teacher_model = resolve_model(teacher_model, "teacher model")  # fail now, before the student loads
        # TRL's environments (environment_factory) may write the prompts and own the reward: no default reward then
        environments = kwargs.get("environment_factory")
        default_reward = reward_funcs is None and environments is None
        if train_dataset is not None:
            try:
                validate_dataset(train_dataset, "train_dataset", need_answer=default_reward,
                                 need_teacher=spec.off_policy_traces, need_prompt=environments is None)
            except MissingColumnError as err:
                if default_reward and "answer" in err.missing:  # opens with TRL's own refusal of a run without reward
                    raise MissingColumnError(
                        f"No reward source provided: pass reward_funcs (as to TRL's GRPOTrainer), or give the data an "
                        f"'answer' column for the suite's {args.reward!r} reward (TGPOConfig.reward); {err}",
                        err.missing) from None
                raise
            if spec.off_policy_traces and not hasattr(train_dataset, "__len__"):
                raise DataError(f"method {args.method!r} looks up each prompt's teacher trace by row: it needs a "
                                "map-style train_dataset (datasets.Dataset), not a streaming IterableDataset")
        if default_reward:
            logger.warning("TGPOTrainer: no reward_funcs given, so the reward is the suite's %r reward against the "
                           "dataset's 'answer' column (TGPOConfig.reward); pass reward_funcs to choose another",
                           args.reward)
        super().__init__(
            model,
            reward_funcs=[REWARD_FUNCTIONS[args.reward]] if default_reward else reward_funcs,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        self.method = spec
        self.loss_config = obj.LossConfig.from_config(args)
        self.teacher = self._build_teacher(teacher_model, teacher_processing_class) if args.needs_teacher else None
        # LUFFY: where each prompt's teacher trace is (rows are looked up, not carried between hooks)
        self._trace_rows = (
            {_prompt_key(p): i for i, p in enumerate(train_dataset["prompt"])} if spec.off_policy_traces else None
        )
        self._token_classes = self._classify_vocabulary(args.agreement_token_classes)
        self._rewards_of_batch = None
        self.run_record: dict | None = None  # tgpo.provenance.run_record, set by tgpo train (for the model card)
        for guard in (NumericGuard(), ContinueSchedule()):  # tgpo.guards: numeric stops, the resumed schedule
            self.add_callback(guard)

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
        a = self.args
        teacher_model = teacher_model.to(self.accelerator.device)
        chunk_size, chunk_tokens = self._teacher_chunks(teacher_model)
        return LocalTeacher(teacher_model, student_rows, chunk_size=chunk_size, chunk_tokens=chunk_tokens,
                            temperature=a.teacher_temperature)

    def _teacher_chunks(self, teacher_model) -> tuple[int | None, int | None]:
        """``teacher_chunk_size`` / ``teacher_chunk_tokens``, with ``"auto"`` chosen for this device and batch
        (:func:`tgpo.teacher.choose_teacher_chunks`; the choice and its reason are logged)."""
        a = self.args
        if AUTO not in (a.teacher_chunk_size, a.teacher_chunk_tokens):
            return a.teacher_chunk_size, a.teacher_chunk_tokens
        T = a.max_completion_length
        context = a.vllm_max_model_length or getattr(self.model.config.get_text_config(), "max_position_embeddings", T)
        device = self.accelerator.device
        rows, tokens, why = choose_teacher_chunks(
            teacher_model.config.get_text_config().to_dict(), a.per_device_train_batch_size * a.steps_per_generation,
            T, prompt_len=max(0, int(context) - T), dtype_bytes=next(teacher_model.parameters()).element_size(),
            device=device.type, budget_bytes=memory_budget_bytes(device))
        rows = rows if a.teacher_chunk_size == AUTO else a.teacher_chunk_size
        tokens = tokens if a.teacher_chunk_tokens == AUTO else a.teacher_chunk_tokens
        logger.info("teacher chunks: %s rows per forward, %s positions per head tile (%s)", rows, tokens, why)
        self.teacher_chunks_reason = why
        return rows, tokens

    def _build_served_teacher(self, teacher_model, teacher_tokenizer, student_rows: int) -> ServedTeacher:
        # The served teacher's weights live in the vLLM server; teacher_model (a folder), if given, names its
        # tokenizer for the vocabulary check.
        if isinstance(teacher_model, (str, Path)) and teacher_tokenizer is None:
            with contextlib.suppress(ModelNotFoundError):  # no local copy: checked by `tgpo align` instead
                teacher_tokenizer = load_tokenizer(resolve_model(teacher_model, "teacher tokenizer"))
        if teacher_tokenizer is not None:
            check_vocabularies(self._tokenizer, teacher_tokenizer)
        else:
            logger.warning("served teacher without a local tokenizer folder: vocabularies not checked (run `tgpo align`)")
        a = self.args
        return ServedTeacher(a.teacher_server_url, student_rows, top_logprobs=a.teacher_server_top_logprobs,
                             temperature=a.teacher_temperature, chunk_size=a.teacher_server_chunk_size,
                             timeout=a.teacher_server_timeout)

    def _classify_vocabulary(self, classes: dict | None) -> torch.Tensor | None:
        """``[V]`` class index of every student token id under ``{class: regex}`` (-1: none), for per-class agreement."""
        if not classes:
            return None
        tokens = self._tokenizer.convert_ids_to_tokens(list(range(len(self._tokenizer))))
        patterns = [re.compile(rx) for rx in classes.values()]
        index = [next((c for c, p in enumerate(patterns) if t is not None and p.fullmatch(t)), -1) for t in tokens]
        return torch.tensor(index, dtype=torch.long)

    def _save_checkpoint(self, model, trial):
        # Transformers writes a checkpoint file by file; the completion record written last (tgpo.checkpoints) lets
        # a resume skip a checkpoint that a kill left half-written; non-finite weights are never written.
        problem = nonfinite_parameters(self.model)
        if problem is not None:
            raise FloatingPointError(f"non-finite parameters at step {self.state.global_step} ({problem}); no checkpoint "
                                     f"written, the last good checkpoint in {self.args.output_dir} is kept")
        super()._save_checkpoint(model, trial)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            mark_complete(Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}")

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        # TRL's card names a local student "[None]" and knows neither the method nor the teacher: the run's record
        # (tgpo.provenance) says how the run was made.
        if not self.is_world_process_zero():
            return
        from .provenance import model_card

        record = self.run_record or {"method": self.args.method, "model": self.model.config._name_or_path}
        model_card(record, model_name or Path(self.args.output_dir).name).save(Path(self.args.output_dir) / "README.md")

    # -------------------------------------------------------------------------------------- schedule
    def guidance_weight_at(self, step: int) -> float:
        """``lambda_k`` at optimizer step ``step`` (1-based); 0 for methods without a guidance schedule.

        ``k`` counts training steps (rollout batches), as the authors' loop does (:meth:`TGPOConfig.rollout_step`): the
        optimizer updates of one rollout batch (PPO mini-batches) share one weight. With one update per batch
        (TRL's default) ``k == step``.
        """
        if not self.method.scheduled:
            return 0.0
        a = self.args
        return obj.guidance_weight(a.rollout_step(step), a.guidance_weight, a.guidance_decay, a.guidance_min)

    @property
    def current_guidance_weight(self) -> float:
        # The step being computed is global_step + 1, also right after a resume (global_step comes from the checkpoint).
        return self.guidance_weight_at(self.state.global_step + 1)

    def _teacher_active(self) -> bool:
        return self.teacher is not None and (not self.method.scheduled or self.current_guidance_weight > 0)

    @property
    def _accumulation(self) -> int:
        # Set by Trainer's loop; outside it (a direct _compute_loss call) the configured value.
        return getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)

    def _aggregation(self, inputs) -> obj.Aggregation:
        """How this micro-batch's token losses are reduced, so that accumulation gives the full-batch loss."""
        train = self.model.training
        n = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes  # as TRL's dapo does
        if train:
            n = n * self._accumulation / self.args.steps_per_generation
        return obj.Aggregation(kind=self.args.loss_type, num_tokens=n, padded_length=self.args.max_completion_length,
                               row_mean=self.args.dr_grpo_row_mean, accumulation=self._accumulation if train else 1,
                               world_size=self.accelerator.num_processes)

    def _metric(self, name: str, value) -> None:
        """Log a value that is already the same on every process (a schedule value, a gathered reward)."""
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][name].append(float(value))

    def _token_means(self, metrics: dict, mask: torch.Tensor, empty: float | None = None) -> None:
        """Log per-token means computed on this process's rows as means over *all* processes' tokens (weighted by
        each process's token count), so a multi-process run logs what one process with the whole batch would.
        With no token anywhere, log ``empty`` (None: nothing)."""
        if not metrics:
            return
        n = mask.sum().float()
        local = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=n.device) * n for v in metrics.values()] + [n])
        total = self.accelerator.reduce(local, reduction="sum") if self.accelerator.num_processes > 1 else local
        if total[-1] == 0:  # no token of this kind anywhere (e.g. an agreement class absent from the batch)
            for name in metrics if empty is not None else ():
                self._metric(name, empty)
            return
        for name, value in zip(metrics, (total[:-1] / total[-1]).tolist()):
            self._metric(name, value)

    # ----------------------------------------------------------------------------------- TRL hooks
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL has no channel for the raw rewards to reach _generate_and_score_completions, which recomputes the
        # advantages with the paper's epsilon: they are kept for the duration of that one call.
        self._rewards_of_batch = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_of_batch

    def _is_trace_row(self, index_in_process: int, rows_in_process: int) -> bool:
        """LUFFY: the last rollout of every group (global index ``G-1`` mod ``G``) is a teacher trace."""
        global_index = self.accelerator.process_index * rows_in_process + index_in_process
        return global_index % self.num_generations == self.num_generations - 1

    def _generate(self, prompts):
        # LUFFY only: put the dataset's teacher trace in place of the last rollout of each group, before TRL builds
        # masks, rewards and old log-probs for the group.
        out = super()._generate(prompts)
        if not self.method.off_policy_traces or not self.model.training:
            return out
        prompt_ids, completion_ids, tool_mask, completions, logprobs, *rest = out
        completion_ids, completions = list(completion_ids), list(completions)
        eos, max_len = self._tokenizer.eos_token_id, self.args.max_completion_length
        for i, prompt in enumerate(prompts):
            if not self._is_trace_row(i, len(prompts)):
                continue
            trace = self.train_dataset[self._trace_rows[_prompt_key(prompt)]]["teacher_completion"]
            ids = self._tokenizer(trace, add_special_tokens=False)["input_ids"] + [eos]
            completion_ids[i] = ids[:max_len]
            completions[i] = trace if isinstance(completions[i], str) else [{"role": "assistant", "content": trace}]
            if logprobs is not None:
                logprobs[i] = [float("nan")] * len(completion_ids[i])  # no sampler log-prob for a dataset trace
            if tool_mask is not None:
                tool_mask[i] = [1] * len(completion_ids[i])
        return (prompt_ids, completion_ids, tool_mask, completions, logprobs, *rest)

    def _generate_and_score_completions(self, inputs):
        # Adds the paper's advantages, the teacher pass and LUFFY's off-policy flags to TRL's batch (batch-first
        # tensors survive TRL's shuffle and split into micro-batches).
        try:
            out = super()._generate_and_score_completions(inputs)
            rewards_per_func = self._rewards_of_batch
        finally:
            self._rewards_of_batch = None
        train = self.model.training
        device = out["completion_ids"].device
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]

        G = self.num_generations if train else self.num_generations_eval
        rewards = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        n = len(inputs)
        local = slice(self.accelerator.process_index * n, (self.accelerator.process_index + 1) * n)
        out["advantages"] = obj.group_advantages(rewards, G, scale=self.args.scale_rewards)[local]
        if self.method.off_policy_traces and train:
            out["off_policy"] = torch.tensor([self._is_trace_row(i, n) for i in range(n)], device=device)
            every_trace = torch.tensor([self._is_trace_row(i, len(rewards)) for i in range(len(rewards))], device=device)
            self._metric("luffy/off_policy_reward", rewards[every_trace].mean())  # over all processes' rows

        self._metric("guidance_weight", self.current_guidance_weight)
        if self._teacher_active():
            argmax, teacher_logp = self.teacher.score(
                out["prompt_ids"], out["prompt_mask"], out["completion_ids"], out["completion_mask"]
            )
            out["teacher_argmax"], out["teacher_logps"] = argmax, teacher_logp
            self._log_agreement(argmax, out["completion_ids"], mask, teacher_logp)
            if isinstance(self.teacher, ServedTeacher):  # positions whose top-k held no id the student can emit
                self._metric("teacher/unrestricted_positions", self.teacher.unrestricted_positions)
            if "argmax" in self.method.teacher and not self.method.guided_grad and "old_per_token_logps" in out:
                # TGPO-Adv over several updates per rollout batch: the rollout policy's lp_g, before any update
                out["old_guided_logps"] = self._rollout_guided_logps(out)
        return out

    def _log_agreement(self, argmax, completion_ids, mask, teacher_logp) -> None:
        agree = (argmax == completion_ids).float()
        self._token_means({"teacher/argmax_agreement": obj.mean_tok(agree, mask),
                           "teacher/sampled_logp": obj.mean_tok(teacher_logp, mask)}, mask)
        if self._token_classes is None:
            return
        classes = self._token_classes.to(completion_ids.device)[completion_ids.clamp(max=len(self._token_classes) - 1)]
        for c, name in enumerate(self.args.agreement_token_classes):
            in_class = mask.bool() & (classes == c)
            self._token_means({f"teacher/argmax_agreement/{name}": obj.mean_tok(agree, in_class)}, in_class)

    @torch.no_grad()
    def _rollout_guided_logps(self, batch) -> torch.Tensor:
        """The current (= rollout) policy's log-prob of the teacher's argmax tokens, via the chunked head."""
        T = batch["completion_ids"].size(1)
        with self._capture_hidden(self.model, True) as hidden:
            logp, _, _ = self._get_per_token_logps_and_entropies(
                self.model,
                torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
                torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
                T,
                batch_size=self.args.per_device_train_batch_size,
            )
        return self._guided_logps(self.model, logp, torch.cat([h[:, -T - 1 : -1] for h in hidden]),
                                  batch["teacher_argmax"], batch["completion_ids"])

    @contextlib.contextmanager
    def _capture_hidden(self, model, enabled: bool):
        """Keep the backbone's last hidden states of the next forward (the student's log-prob of the teacher's token
        is not computed by TRL's fused head) — one student forward serves both."""
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

    def _guided_logps(self, model, logp: torch.Tensor, hidden: torch.Tensor, targets: torch.Tensor,
                      sampled: torch.Tensor) -> torch.Tensor:
        """``log softmax(lm_head(hidden) / temperature)[targets]`` from ``logp`` (the same distribution's log-prob
        of ``sampled``, TRL's fused head): one shared log-sum-exp, no second head pass (:mod:`tgpo.head`)."""
        lm = self.accelerator.unwrap_model(model)
        lm = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        head, cfg = lm.get_output_embeddings(), lm.config.get_text_config()
        if any(getattr(cfg, k, None) is not None for k in ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")):
            raise NotImplementedError("TGPO guidance does not support models with scaled logits yet")
        return second_target_logps(logp, hidden, head.weight, head.bias, targets, sampled, self.temperature,
                                   getattr(cfg, "final_logit_softcapping", None))

    def _loss_inputs(self, model, inputs) -> tuple[obj.LossInputs, list]:
        """TRL's micro-batch as :class:`~tgpo.objectives.LossInputs`, from one student forward; also the captured
        hidden states (for diagnostics)."""
        completion_ids = inputs["completion_ids"]
        T = completion_ids.size(1)
        mask = inputs["completion_mask"] * inputs["tool_mask"] if "tool_mask" in inputs else inputs["completion_mask"]
        weight = self.current_guidance_weight
        guided = "argmax" in self.method.teacher and weight > 0 and "teacher_argmax" in inputs
        with self._capture_hidden(model, guided) as hidden:
            logp, entropy, aux_loss = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([inputs["prompt_ids"], completion_ids], dim=1),
                torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
                T,
                compute_entropy=True,
                compute_aux_loss=self.aux_loss_enabled,
            )
        self._router_aux_loss = aux_loss  # a MoE student's load-balancing loss (else None), for _compute_loss
        guided_logp = None
        if guided:
            with contextlib.nullcontext() if self.method.guided_grad else torch.no_grad():
                guided_logp = self._guided_logps(model, logp, hidden[0][:, -T - 1 : -1], inputs["teacher_argmax"],
                                                 completion_ids)
        old_logp = inputs.get("old_per_token_logps")
        is_weights = inputs.get("importance_sampling_ratio") if self.use_vllm and self.vllm_importance_sampling_correction else None
        x = obj.LossInputs(
            logp=logp,
            old_logp=logp.detach() if old_logp is None else old_logp,
            advantages=inputs["advantages"],
            mask=mask,
            entropy=entropy,
            aggregation=self._aggregation(inputs),
            guided_logp=guided_logp,
            old_guided_logp=inputs.get("old_guided_logps"),
            teacher_logp=inputs.get("teacher_logps"),
            off_policy=inputs.get("off_policy"),
            guidance_weight=weight,
            is_weights=is_weights,
        )
        return x, hidden

    def _compute_loss(self, model, inputs):
        # The method's registered objective on one student forward; every aggregation is over the optimizer step
        # (LossInputs.aggregation), so gradient accumulation gives the full-batch gradient.
        x, hidden = self._loss_inputs(model, inputs)
        out = obj.method_loss(self.args.method, x, self.loss_config)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(
                f"non-finite loss ({out.loss.item()}) at step {self.state.global_step + 1}, method {self.args.method!r}; "
                f"stopped before the update, the last good checkpoint in {self.args.output_dir} is kept"
            )
        self._log_loss_metrics(out.metrics, x.mask)
        if self.args.log_guidance_share and hidden and "guidance" in out.terms and self._share_due():
            self._metric("guidance/grad_share", self._gradient_share(out.terms["guidance"], out.terms["pg"], hidden[0]))
        if self.aux_loss_enabled:  # MoE students: TRL adds the router's load-balancing loss (scaled for accumulation)
            aux = self._router_aux_loss
            self._metric("aux_loss", self.accelerator.gather_for_metrics(aux.detach()).mean())
            return out.loss + self.router_aux_loss_coef * aux / (self._accumulation if self.model.training else 1)
        return out.loss

    def _log_loss_metrics(self, metrics: dict, mask: torch.Tensor) -> None:
        """Log a loss's diagnostics as TRL logs its own (``policy_loss``: mean over processes; ``[B]`` per-sequence
        values named ``*_min`` / ``*_max``: min / max over every process's rows; the rest: token means over all
        processes), and TRL's ``entropy_coef`` once per optimizer step."""
        many = self.accelerator.num_processes > 1
        rest = {}
        for name, value in metrics.items():
            value = value.detach().float()
            if name == "policy_loss":
                self._metric(name, self.accelerator.reduce(value, reduction="mean") if many else value)
            elif value.dim() == 1:
                rows = self.accelerator.gather(value) if many else value
                rows = rows[~rows.isnan()]  # NaN: an empty row; all empty: NaN, as TRL's nanmin / nanmax
                extreme = (rows.min() if name.endswith("_min") else rows.max()) if len(rows) else float("nan")
                self._metric(name, extreme)
            else:
                rest[name] = value
        self._token_means(rest, mask, empty=0.0)  # TRL logs 0 for a batch whose tokens are all masked
        if self.model.training and self.accelerator.sync_gradients:
            self._metric("entropy_coef", self.args.entropy_coef)

    def _share_due(self) -> bool:
        """Whether this training micro-batch measures the guidance share (optimizer steps 1, 1+k, ...)."""
        return self.model.training and self.state.global_step % self.args.guidance_share_every == 0

    @staticmethod
    def _gradient_share(term: torch.Tensor, reference: torch.Tensor, hidden: torch.Tensor) -> float:
        """``||grad_h term|| / ||grad_h reference||`` at the final hidden states ``h`` (both terms read them), a
        proxy for the shared parameters that costs two backward passes through the output head only."""
        (g_term,) = torch.autograd.grad(term, hidden, retain_graph=True, allow_unused=True)
        (g_ref,) = torch.autograd.grad(reference, hidden, retain_graph=True, allow_unused=True)
        if g_term is None:
            return 0.0
        ref = 0.0 if g_ref is None else g_ref.norm().item()
        return g_term.norm().item() / ref if ref > 0 else float("inf")


class GracefulStop(TrainerCallback):
    """End training at the next step boundary after SIGINT or SIGTERM, with a checkpoint of that step.

    Use ``with stop.handling_signals(): trainer.train()``; :attr:`received` is the signal number afterwards (None
    when training ran to its end). A second signal falls back to the default behaviour (an immediate stop).
    """

    def __init__(self):
        self.received: int | None = None

    @contextlib.contextmanager
    def handling_signals(self, signals=(signal.SIGINT, signal.SIGTERM)):
        previous = {s: signal.getsignal(s) for s in signals}

        def handler(signum, frame):
            self.received = signum
            for s, h in previous.items():  # a second signal is not deferred
                signal.signal(s, h)

        for s in signals:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True  # whatever the save strategy: the last finished step is kept
            control.should_training_stop = True
        return control
