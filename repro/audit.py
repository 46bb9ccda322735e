"""The settings audit, generated from the code: the paper profile's training configs (``repro/configs/paper/``)
under the ``authors_final`` preset, setting by setting, against the authors' final launcher; then the settings that
differ between the ``authors_final`` and ``controlled`` presets (``tgpo/resources/presets.yaml`` and the methods'
registry entries).

    python -m repro.audit [--profile lab|smoke|paper] [--output-dir DIR]

Output: ``results/<profile>/audit.md`` (an earlier one is moved to ``previous/``). The presets are the same in every
profile; the file sits beside each profile's tables so that their provenance (the preset in each manifest) can be
read against it. The authors' values are cited as ``file:line`` of helldog-star/TGPO at :data:`AUTHORS_COMMIT`
(their final launcher, ``train.sh`` with ``config/tasks.sh``, and the verl fork it runs); the suite's are read from
the resolved ``TGPOConfig`` of each method's paper config. A setting whose values differ is a documented departure
(:data:`DEPARTURES`, docs/method.md §6) or a ``MISMATCH`` (``tests/test_repro.py`` requires none).
"""

from __future__ import annotations

import sys
import warnings

import pandas as pd

from repro import options, paths, session

NAME = "audit"
COMPARED = ("authors_final", "controlled")
MEANING = {
    ("scale_rewards", "group"): "A = (r − group mean) / group std",
    ("scale_rewards", "batch"): "A = (r − group mean) / batch std",
    ("scale_rewards", "none"): "A = r − group mean",
    ("loss_type", "dapo"): "token mean over the batch",
    ("loss_type", "grpo"): "token mean per sequence, then mean over sequences",
    ("loss_type", "bnpo"): "token mean over the micro-batch",
    ("loss_type", "dr_grpo"): "token sum / padded length",
    ("dr_grpo_row_mean", True): "dr_grpo divides by rows too",
    ("dr_grpo_row_mean", False): "dr_grpo does not divide by rows: the authors' loss_remove_token_mean",
}


#: Settings that act only on the outcome reward's group advantage: no effect on a method that does not read one.
OUTCOME_REWARD_SETTINGS = ("scale_rewards",)


AUTHORS_COMMIT = "0a32d6f"
_TASKS, _TRAIN = "config/tasks.sh", "train.sh"
_VERL = "luffy/verl/verl"
_YAML, _WORKER = f"{_VERL}/mix_src/config/mix_ppo_trainer.yaml", f"{_VERL}/mix_src/mix_fsdp_worker.py"
_ACTOR, _CORE = f"{_VERL}/mix_src/mix_actor.py", f"{_VERL}/mix_src/mix_core_alg.py"
#: config/tasks.sh line of each method's grpo_use_std and loss_remove_token_mean (their tipo_* are TGPO-Reg/-Adv).
_STD_LINE = {"grpo": 45, "kdrl": 61, "kdrl_authors": 61, "luffy": 74, "rkl": 88, "tgpo_adv": 105, "tgpo": 123}
_MEAN_LINE = {"grpo": 42, "kdrl": 58, "kdrl_authors": 58, "luffy": 70, "rkl": 85, "tgpo_adv": 102, "tgpo": 120}
_STD = {"grpo": False, "kdrl": False, "kdrl_authors": False, "luffy": False, "rkl": False, "tgpo_adv": True,
        "tgpo": True}
_REMOVE_TOKEN_MEAN = {"grpo": True, "kdrl": False, "kdrl_authors": False, "luffy": False, "rkl": False,
                      "tgpo_adv": False, "tgpo": False}
PADDED_SUM, TOKEN_MEAN = "token sum / padded length", "token mean"

#: Settings whose suite value differs from the authors' on purpose: setting -> why (docs/method.md §6).
DEPARTURES = {
    "lr schedule": "their scheduler (constant, 0 warmup steps) gives lr 0 until its first step, taken after training "
                   "step 1: their step 1 only primes Adam; transformers has no schedule for that",
    "parameters decayed": "transformers' Trainer exempts biases and norm weights from weight decay; at lr 1e-6 the "
                          "decay is 1e-8 per update",
    "loss scale of token means": "their token means are per dynamic micro-batch, summed; the suite's is over the "
                                 "batch (their packing is not reproduced)",
    "entropy bonus vs PG": "their per-micro-batch entropy means are summed (n_micro of them): against a padded-length "
                           "sum their bonus is n_micro x stronger; `entropy_micro_batches` states the factor",
    "padded-length sum over GPUs": "the suite's sum is over the whole batch, so a run makes the same update on any "
                                   "number of processes; theirs is 1/n_gpus of it",
    "KDRL term": "a correct KDRL (`kdrl`); theirs is `kdrl_authors`",
}


def _cite(path: str, *lines: int) -> str:
    return f"`{path}:{'/'.join(str(n) for n in lines)}`"


def _aggregation(args) -> str:
    if args.loss_type == "dapo":
        return TOKEN_MEAN
    if args.loss_type == "dr_grpo" and not args.dr_grpo_row_mean:
        return PADDED_SUM
    return f"{args.loss_type} (row mean {args.dr_grpo_row_mean})"


def _schedule(args) -> str:
    kind = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    warmup = args.warmup_steps or getattr(args, "warmup_ratio", 0) or 0
    return f"{kind}, no warmup" if not warmup else f"{kind}, warmup {warmup}"


def authors_settings(method: str, spec, args) -> list[tuple[str, object, str, object]]:
    """``(setting, the authors' value, where, the suite's value)`` for one method, both values in the suite's terms.
    ``args`` is the method's paper config as the dry run validates it (on the launch's processes)."""
    prompts_per_step = args.generation_batch_size // args.num_generations
    padded_sum = _aggregation(args) == PADDED_SUM
    rows = []
    if method in _STD:  # the methods of the authors' launcher (a newly registered one has no value of theirs)
        rows += [
            ("advantage", "group std" if _STD[method] else "no std", _cite(_TASKS, _STD_LINE[method]),
             {"group": "group std", "none": "no std"}.get(args.scale_rewards, args.scale_rewards)),
            ("aggregation", PADDED_SUM if _REMOVE_TOKEN_MEAN[method] else TOKEN_MEAN,
             _cite(_TASKS, _MEAN_LINE[method]) + ", " + _cite(_CORE, 233, 237), _aggregation(args)),
            ("entropy bonus vs PG", "n_micro" if _REMOVE_TOKEN_MEAN[method] else 1.0, _cite(_ACTOR, 254, 278, 295),
             args.entropy_micro_batches),
        ]
    rows += [
        ("loss scale of token means", "sum of micro-batch token means", _cite(_ACTOR, 295), "one token mean per update")
        if not padded_sum else
        ("padded-length sum over GPUs", "mean of per-GPU sums", _cite(_CORE, 234) + " (FSDP averages gradients)",
         "sum over the whole batch"),
        ("clip range", "none" if method == "luffy" else "0.2, symmetric",
         _cite(_TASKS, 71) if method == "luffy" else _cite(_YAML, 39, 40) + ", " + _cite(_CORE, 150),
         "none" if "clip_eps" not in spec.reads else
         f"{args.epsilon:g}, symmetric" if args.epsilon_high in (None, args.epsilon) else
         f"{args.epsilon:g} / {args.epsilon_high:g}"),
        ("learning rate", 1e-6, _cite(_TRAIN, 105), args.learning_rate),
        ("lr schedule", "constant, no warmup (lr 0 in step 1)", _cite(_YAML, 50, 52) + ", " + _cite(_WORKER, 254, 417),
         _schedule(args)),
        ("optimizer", "torch AdamW", _cite(_WORKER, 243),
         "torch AdamW" if getattr(args.optim, "value", args.optim) in ("adamw_torch", "adamw_torch_fused")
         else getattr(args.optim, "value", args.optim)),
        ("AdamW weight decay", 0.01, _cite(_WORKER, 246), args.weight_decay),
        ("parameters decayed", "all", _cite(_WORKER, 243), "all but biases and norms"),
        ("AdamW betas", (0.9, 0.999), _cite(_WORKER, 245), (args.adam_beta1, args.adam_beta2)),
        ("AdamW epsilon", 1e-8, _cite(_WORKER, 243) + " (torch's default)", args.adam_epsilon),
        ("gradient clipping", 1.0, _cite(_YAML, 38) + ", " + _cite(_ACTOR, 318), args.max_grad_norm),
        ("entropy coefficient", 0.001, _cite(_TRAIN, 128), args.entropy_coef),
        ("reference KL", 0.0, _cite(_TRAIN, 111, 139), args.beta),
        ("rollouts per prompt", 8, _cite(_TRAIN, 123), args.num_generations),
        ("prompts per training step", 128, _cite(_TRAIN, 100), prompts_per_step),
        ("prompts per optimizer update", 64, _cite(_TRAIN, 107),
         args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps // args.num_generations),
        ("training steps", 300, _cite(_TRAIN, 150), args.max_steps // args.updates_per_generation),
        ("rollout temperature", 1.0, _cite(_TRAIN, 120), args.temperature),
        ("max response tokens", 8192, _cite(_TRAIN, 103), args.max_completion_length),
        ("reward", "authors_v3", _cite(_TRAIN, 146) + " (reward_impl_version=3)", args.reward),
    ]
    if method in ("kdrl", "kdrl_authors"):
        rows += [("KDRL beta", 0.002, _cite(_TASKS, 51), args.kdrl_beta),
                 ("KDRL term", "- beta x mean(k1)", _cite(_CORE, 363, 370),
                  "- beta x mean(k1)" if method == "kdrl_authors" else f"+ beta x mean({args.kdrl_estimator})")]
    if method in ("tgpo", "tgpo_adv"):
        lines = (112, 113, 111) if method == "tgpo" else (95, 96, 94)
        rows += [("guidance lambda_0", 0.002 if method == "tgpo" else 0.02, _cite(_TASKS, lines[0]), args.guidance_weight),
                 ("guidance decay", 1e-5 if method == "tgpo" else 1e-4, _cite(_TASKS, lines[1]), args.guidance_decay),
                 ("guidance floor", 0.0, _cite(_TASKS, lines[2]), args.guidance_min)]
    if method == "luffy":
        rows.append(("LUFFY shaping gamma", 0.1, _cite(_TASKS, 67) + ", " + _cite(_CORE, 175), args.luffy_shaping_gamma))
    return rows


def paper_args(method: str):
    """``method``'s paper-profile config (its ``7b_cross_<method>.yaml``, or the base with the method set) under the
    ``authors_final`` preset, validated on the launch's processes, as ``tgpo train --dry-run`` does."""
    from tgpo.run_config import load_run_config, make_args

    paper = paths.CONFIGS / "paper"
    own = paper / f"7b_cross_{method}.yaml"
    run = load_run_config(own if own.exists() else paper / "7b_cross_grpo.yaml", method=method,
                          preset="authors_final", check_paths=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_args(run.trainer, probe=True, processes=run.launch.num_processes or 1)


def authors_frame() -> pd.DataFrame:
    """Method x setting: the authors' value and where it is, the suite's, and ``match``, the documented departure,
    or ``MISMATCH``; a row the same for every method is written once (method "every method")."""
    from tgpo.objectives import METHODS

    rows = []
    for method, spec in METHODS.items():
        args = paper_args(method)
        for setting, theirs, where, ours in authors_settings(method, spec, args):
            same = theirs == ours or (isinstance(theirs, float) and isinstance(ours, float) and abs(theirs - ours) < 1e-15)
            status = "match" if same else (f"departure: {DEPARTURES[setting]}" if setting in DEPARTURES else "MISMATCH")
            if setting == "advantage" and not same and not spec.outcome_reward:
                status = f"no effect: {spec.label} reads no outcome reward"
            rows.append({"method": spec.label, "setting": setting, "authors": str(theirs), "where": where,
                         "suite": str(ours), "status": status})
    frame = pd.DataFrame(rows)
    labels = [spec.label for spec in METHODS.values()]
    grouped = []
    for key, group in frame.groupby(["setting", "authors", "where", "suite", "status"], sort=False):
        methods = list(group.method)
        grouped.append({"method": "every method" if methods == labels else ", ".join(methods),
                        **dict(zip(["setting", "authors", "where", "suite", "status"], key))})
    return pd.DataFrame(grouped, columns=["method", "setting", "authors", "where", "suite", "status"])


def resolved(preset: str, method: str):
    """``method``'s ``TGPOConfig`` under ``preset`` (method defaults applied, as a run resolves it)."""
    from tgpo.run_config import make_args, preset_settings

    with warnings.catch_warnings():  # library deprecation notes are not the audit's business
        warnings.simplefilter("ignore")
        return make_args({"output_dir": str(paths.runs_dir() / "audit"), "method": method,
                          **preset_settings(preset, method)}, probe=True)


def audit_frame(presets: tuple[str, str] = COMPARED) -> pd.DataFrame:
    """One row per (method, setting) whose resolved value differs between the two presets; the settings compared
    are every field either preset sets for any method."""
    from tgpo.objectives import METHODS
    from tgpo.run_config import preset_settings

    fields = sorted({f for p in presets for m in METHODS for f in preset_settings(p, m)})
    rows = []
    for method, spec in METHODS.items():
        a, b = resolved(presets[0], method), resolved(presets[1], method)
        for field in fields:
            va, vb = getattr(a, field), getattr(b, field)
            if va != vb:
                inert = field in OUTCOME_REWARD_SETTINGS and not spec.outcome_reward
                rows.append({"method": spec.label, "setting": field,
                             presets[0]: _describe(field, va), presets[1]: _describe(field, vb),
                             "effect": f"none: {spec.label} reads no outcome reward" if inert else ""})
    return pd.DataFrame(rows, columns=["method", "setting", *presets, "effect"])


def _describe(field: str, value) -> str:
    meaning = MEANING.get((field, value))
    return f"`{value}`: {meaning}" if meaning else f"`{value}`"


def render(frame: pd.DataFrame, presets: tuple[str, str] = COMPARED, authors: pd.DataFrame | None = None) -> str:
    from tgpo.objectives import METHODS
    from tgpo.run_config import presets as all_presets

    table = all_presets()
    same = [spec.label for m, spec in METHODS.items() if spec.label not in set(frame.method)]
    lines = []
    if authors is not None:
        lines += ["# Settings audit: the paper profile under `authors_final` against the authors' final launcher", "",
                  f"The authors' values from helldog-star/TGPO at `{AUTHORS_COMMIT}` (file:line), the suite's from "
                  "each method's paper config (`repro/configs/paper/7b_cross_<method>.yaml`) as `tgpo train --dry-run` "
                  "resolves it on its 8 processes. Departures are explained in docs/method.md §6.", "",
                  authors.to_markdown(index=False), ""]
    lines += [f"# Presets audit: `{presets[0]}` against `{presets[1]}`", ""]
    lines += [f"- `{p}`: {table[p]['_about']}" for p in presets]
    lines += ["", "Settings that differ, per method, as `TGPOConfig` resolves them (method defaults applied):", "",
              frame.to_markdown(index=False) if not frame.empty else "_none_", ""]
    if same:
        lines.append(f"The same under both presets: {', '.join(same)}.")
    lines += ["", "Not expressible as a preset: the authors' dynamic micro-batches, whose token-mean losses are summed "
              "(docs/method.md §3). Every preset here aggregates once per optimizer step. Generated by "
              "`python -m repro.audit` from `tgpo/resources/presets.yaml`, the methods' registry entries "
              "(`tgpo.objectives.METHODS`) and `repro/configs/paper/`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # no --config: the audit reads every preset and paper config (the other run options are reproduce_all's passthrough)
    args = options.parse_args(NAME, __doc__, argv, figures=False, config=False)
    frame = audit_frame()
    text = render(frame, authors=authors_frame())
    if args.dry_run:
        print(text)
        return 0
    out_dir = session.archive(options.output_dir(args), [f"{NAME}.md"])
    (out_dir / f"{NAME}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(options.cli(main))
