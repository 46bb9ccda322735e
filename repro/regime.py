"""Regime statistics of a lab setting (student, teacher, RL split), measured before any method is compared.

    python -m repro.regime --teacher teacher_cross [--student student] [--rl-split k4] [--prompts 256] [--rollouts 8]
                           [--grpo-steps 25] [--guidance-steps 50 --guidance-at 1,10,25] [--guidance-only] [--name NAME]

Measures, with 95% intervals:

* accuracy: student and teacher, greedy, on the RL split (600 fresh prompts) and the lab's eval splits (id, hard, ood);
* length: the student's rollouts' mean length, the share that write a long step (a world-v2 step that carries the
  operands still to add, :mod:`tgpo.lab.world`), their accuracy against the short ones (a paired difference over
  prompts) and the share cut by the completion cap;
* reward density: under GRPO with Table 1's lab recipe (``repro/configs/lab/table1.yaml``'s trainer, preset
  ``controlled``) on the RL split, the share of all-wrong and all-right groups per step and over steps
  1..``--grpo-steps`` (TRL's ``frac_reward_zero_std`` is their sum), and the reward curve;
* disagreement: on the student's own rollouts (``--prompts`` x ``--rollouts`` at the recipe's temperature and
  completion cap), per position class (:mod:`tgpo.lab.positions`): how often the teacher's argmax differs from the
  sampled token, the student's probability of the teacher's argmax (median, mean), and the per-token KL both ways;
* first errors: in each wrong rollout, the first token that leaves every correct solution (:func:`first_error`):
  how often the teacher's (and the student's own) argmax is a correct token there, and how often putting the
  teacher's argmax there (or the student's: greedy from the prefix) and continuing greedily with the student fixes
  the answer; and in correct rollouts, what the teacher's token at the first step start where it disagrees does;
* guidance gradient by position class (``regime_<name>_guidance.*``; ``--guidance-only``: only these): TGPO-Reg
  (Table 1's row: the recipe's trainer and its guidance schedule, with ``--teacher``) trained ``--guidance-steps``
  steps on the RL split with Table 1's data, so that its batches are those of the lab's TGPO-Reg run of that seed; at
  steps ``--guidance-at`` and the last, on that step's batch, the trainer's own guidance and policy-gradient terms'
  gradients at the final hidden states h split by the position class of each completion position
  (:mod:`repro.guidance_share`): share of class c = sum over its positions of ||grad_h[p]||^2 / ||grad_h||^2, with the
  share of positions for comparison and, for scale, ||grad_h guidance|| / ||grad_h pg|| (the trainer's
  ``guidance/grad_share``, which includes lambda_k). A step where the schedule has reached 0 is refused.

The grammar (which solutions are correct: :func:`tgpo.lab.config.grammar_of`) is the student's world's, with the styles
and long steps either model writes; the completion cap is the student's world's (``v2_*`` models: world v2,
:data:`tgpo.lab.config.WORLD_V2`; a cap of None is the recipe's). Intervals: accuracy over problems; group shares over groups; rollout statistics are ratios clustered by prompt
(:func:`repro.stats.cluster_ratio_interval`); ``n`` counts the units (problems, groups, positions, rollouts). Outputs in ``results/lab/``: ``regime_<name>.csv`` (one row per
statistic), ``regime_<name>.md`` and ``regime_<name>_manifest.json``; ``regime_<name>_guidance.{csv,md}`` (one row per
step, statistic and class) and its manifest; earlier ones move to ``previous/``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from repro import options, stats
from repro.manifest import Manifest
from repro.paths import RESULTS
from repro.session import archive
from repro.table_config import DEFAULT_PRESET, UsageError, load_table

NAME = "regime"
SUFFIXES = (".csv", ".md", "_manifest.json")
#: The recipe whose trainer settings (temperature, completion cap, batch, lr) the GRPO probe and the rollouts use.
RECIPE = "table1"
ACCURACY_SPLITS = ("id", "hard", "ood")
RL_EVAL_SIZE = 600
RL_EVAL_SEED = 10_000  # fresh RL-split prompts for accuracy (tgpo.lab.models.evaluate_splits uses the same seed)
ROLLOUT_SEED = 1
#: Columns of the CSV: one row per statistic, a class ("" when it has none), the estimate and its 95% interval.
CSV_COLUMNS = ("section", "statistic", "cls", "value", "low", "high", "n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = options._Parser(prog=f"python -m repro.{NAME}", description=__doc__.strip().splitlines()[0],
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--student", default="student", help="lab model name or folder")
    parser.add_argument("--teacher", default="teacher_cross", help="lab model name or folder")
    parser.add_argument("--rl-split", default="k4", help="k<n>[+k<n>...], e.g. k4 (Table 1's), k5, k4+k5")
    parser.add_argument("--prompts", type=options.positive_int, default=256, help="RL prompts for rollout statistics")
    parser.add_argument("--rollouts", type=options.positive_int, default=8, help="rollouts per prompt")
    parser.add_argument("--grpo-steps", type=int, default=25, help="GRPO steps for the group shares (0: skip)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of the GRPO and TGPO-Reg probes")
    parser.add_argument("--guidance-steps", type=int, default=50,
                        help="TGPO-Reg steps for the guidance gradient by position class (0: skip)")
    parser.add_argument("--guidance-at", type=step_list, default=(1, 10, 25),
                        help="steps measured besides the last, comma-separated (those beyond --guidance-steps are left out)")
    parser.add_argument("--guidance-only", action="store_true",
                        help="measure only the guidance gradient by position class (regime_<name>_guidance.*)")
    parser.add_argument("--name", help="output name (default <student>_<teacher>_<rl-split>)")
    parser.add_argument("--output-dir", type=Path, help="default: results/lab/")
    args = parser.parse_args(argv)
    for flag in ("grpo_steps", "guidance_steps"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: expected 0 or more")
    if args.guidance_only and not args.guidance_steps:
        raise UsageError("--guidance-only with --guidance-steps 0: nothing to measure")
    args.preset, args.profile = DEFAULT_PRESET["lab"], "lab"
    return args


def step_list(text: str) -> tuple[int, ...]:
    """An ``argparse`` type: comma-separated optimizer steps (each >= 1), e.g. ``1,10,25``."""
    return tuple(sorted({options.positive_int(part) for part in text.split(",")}))


def main(argv: list[str] | None = None) -> int:
    from tgpo.lab import world

    args = parse_args(argv)
    from tgpo.lab import kernels

    kernels.pin()  # the lab jobs' threads and kernel ISA, before torch loads (below)
    try:
        world.parse_rl_split(args.rl_split)
    except ValueError as err:
        raise UsageError(f"--rl-split: {err}") from None
    from repro.lab_runner import model_dir
    from tgpo.lab.config import grammar_of

    for role in ("student", "teacher"):
        if not (model_dir(getattr(args, role)) / "config.json").exists():
            raise FileNotFoundError(f"--{role} {getattr(args, role)}: no built lab model at {model_dir(getattr(args, role))}")
    name = args.name or f"{Path(args.student).name}_{Path(args.teacher).name}_{args.rl_split.replace('+', '')}"
    stem = f"{NAME}_{name}"
    table = load_table("lab", RECIPE)
    measured = guidance_steps(args, table) if args.guidance_steps else []
    stems = ([] if args.guidance_only else [stem]) + ([f"{stem}{GUIDANCE}"] if measured else [])
    out_dir = archive(Path(args.output_dir or RESULTS / "lab"), [s + suffix for s in stems for suffix in SUFFIXES])
    lab_world = grammar_of(Path(args.student).name, Path(args.teacher).name)
    trainer = dict(table.trainer)
    trainer["max_completion_length"] = lab_world.completion_cap or trainer["max_completion_length"]
    if not args.guidance_only:
        regime_statistics(args, table, trainer, lab_world, out_dir, name)
    if measured:
        guidance_statistics(args, table, trainer, measured, out_dir, name)
    return 0


def regime_statistics(args, table, trainer: dict, lab_world, out_dir: Path, name: str) -> None:
    """Everything but the guidance gradient: ``regime_<name>.{csv,md}`` and its manifest."""
    from repro.lab_runner import model_dir
    from tgpo.lab import world
    from tgpo.lab.models import load

    stem = f"{NAME}_{name}"
    manifest = Manifest(NAME, args, table, [args.seed])
    started = time.time()
    student, tok = load(model_dir(args.student))
    teacher, _ = load(model_dir(args.teacher))
    rows: list[dict] = []
    rows += accuracy_rows(student, teacher, tok, args.rl_split)
    print(f"[regime] accuracy done ({time.time() - started:.0f}s)", flush=True)
    rl_rows = world.rl_split(args.rl_split, n=args.prompts, seed=RL_EVAL_SEED + 1)
    rollouts = sample_rollouts(student, tok, rl_rows, args.rollouts, trainer["temperature"],
                               trainer["max_completion_length"])
    rows += length_rows(rollouts, trainer["max_completion_length"])
    score_positions(student, teacher, tok, rollouts)
    rows += disagreement_rows(rollouts)
    rows += first_error_rows(student, tok, rollouts, trainer["max_completion_length"], lab_world)
    print(f"[regime] rollout statistics done ({time.time() - started:.0f}s)", flush=True)
    curve = grpo_groups(args, table, trainer) if args.grpo_steps else pd.DataFrame()
    rows += group_rows(curve, args.grpo_steps)

    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    frame.to_csv(out_dir / f"{stem}.csv", index=False, float_format="%.6g")
    text = render(frame, curve, args, name)
    (out_dir / f"{stem}.md").write_text(text)
    manifest.extra = {"regime": {"student": args.student, "teacher": args.teacher, "rl_split": args.rl_split,
                                 "prompts": args.prompts, "rollouts": args.rollouts, "grpo_steps": args.grpo_steps,
                                 "grpo_seed": args.seed, "rollout_seed": ROLLOUT_SEED,
                                 "completion_cap": trainer["max_completion_length"],
                                 "recipe": f"repro/configs/lab/{RECIPE}.yaml trainer, preset {args.preset}",
                                 "grpo_curve": curve.to_dict("records")}}
    manifest.write(out_dir, stem, [])
    print(text)


# --------------------------------------------------------------------------- statistics
def _row(section: str, statistic: str, interval: stats.Interval, cls: str = "") -> dict:
    return {"section": section, "statistic": statistic, "cls": cls, "value": interval.mean,
            "low": interval.low, "high": interval.high, "n": interval.n}


def _point(section: str, statistic: str, value: float, n: int, cls: str = "") -> dict:
    return {"section": section, "statistic": statistic, "cls": cls, "value": value, "low": np.nan, "high": np.nan,
            "n": n}


def accuracy_rows(student, teacher, tok, rl_split: str) -> list[dict]:
    """Greedy accuracy (%) of both models on ``RL_EVAL_SIZE`` fresh RL-split prompts and on the eval splits."""
    from tgpo.lab import world
    from tgpo.lab.models import evaluate

    splits = {f"rl {rl_split}": world.rl_split(rl_split, n=RL_EVAL_SIZE, seed=RL_EVAL_SEED),
              **{s: world.make_split(s) for s in ACCURACY_SPLITS}}
    out = []
    for role, model in (("student", student), ("teacher", teacher)):
        for split, problems in splits.items():
            correct = np.asarray(evaluate(model, tok, problems)["correct"], dtype=float) * 100
            out.append(_row("accuracy", f"{role} greedy", stats.t_interval(correct), split))
    return out


def sample_rollouts(student, tok, problems: list[dict], n: int, temperature: float, cap: int) -> list[dict]:
    """``n`` sampled rollouts per problem: ``{prompt, answer, group, tokens, classes, correct}`` (tokens end in
    ``<eos>`` unless the rollout hit the cap ``cap``)."""
    from tgpo.lab.models import generate
    from tgpo.lab.positions import completion_tokens, position_classes
    from tgpo.lab.world import is_correct

    prompts = [p["prompt"] for p in problems for _ in range(n)]
    texts = generate(student, tok, prompts, temperature=temperature, max_new_tokens=cap, seed=ROLLOUT_SEED)
    out = []
    for i, text in enumerate(texts):
        problem = problems[i // n]
        tokens = completion_tokens(text)
        tokens = tokens + completion_tokens("", eos=True) if len(tokens) < cap else tokens
        out.append({"prompt": problem["prompt"], "answer": problem["answer"], "group": i // n, "text": text,
                    "tokens": tokens, "classes": position_classes(tokens), "correct": is_correct(text, problem["answer"])})
    return out


def is_long(rollout: dict) -> bool:
    """Whether a rollout writes a long step (:func:`tgpo.lab.positions.has_long_step` of its classes)."""
    from tgpo.lab.positions import has_long_step

    return has_long_step(rollout["classes"])


def length_rows(rollouts: list[dict], cap: int) -> list[dict]:
    """Mean length (completion tokens, with EOS), the share of rollouts with a long step, the share cut by the cap
    ``cap``, and sampled accuracy of long-form against short rollouts (points; a difference over the same prompts)."""
    n_groups = 1 + max(r["group"] for r in rollouts)

    def per_prompt(value, keep=lambda r: True):
        num, den = np.zeros(n_groups), np.zeros(n_groups)
        for r in rollouts:
            if keep(r):
                num[r["group"]] += value(r)
                den[r["group"]] += 1
        return num, den

    def interval(value, keep=lambda r: True):
        num, den = per_prompt(value, keep)
        return replace(stats.cluster_ratio_interval(num, den), n=int(den.sum()))

    correct = lambda r: 100.0 * r["correct"]  # noqa: E731
    short = lambda r: not is_long(r)  # noqa: E731
    out = [_row("length", "mean length (tokens)", interval(lambda r: len(r["tokens"]))),
           _row("length", "rollouts with a long step (%)", interval(lambda r: 100.0 * is_long(r))),
           _row("length", f"rollouts cut by the cap of {cap} (%)",
                interval(lambda r: 100.0 * (len(r["tokens"]) >= cap and r["tokens"][-1] != "<eos>")))]
    if any(map(is_long, rollouts)):
        out += [_row("length", "sampled accuracy, rollouts with a long step (%)", interval(correct, is_long)),
                _row("length", "sampled accuracy, rollouts without (%)", interval(correct, short))]
        diff = stats.cluster_ratio_difference(*per_prompt(correct, is_long), *per_prompt(correct, short))
        out.append(_row("length", "accuracy with a long step - without (points)",
                        replace(diff, n=len(rollouts))))
    return out


def score_positions(student, teacher, tok, rollouts: list[dict]) -> None:
    """Add to each rollout, per completion token: the teacher's and the student's argmax (token strings), the
    student's log-probability of the teacher's argmax, and the per-token KL(teacher||student) and KL(student||teacher)
    (nats, full distributions). Sequences of one prompt length and one completion length go through each model as
    one batch (no padding, and the completion starts at the same position in every row)."""
    import torch

    from tgpo.lab.tokenizer import VOCAB

    index = {t: i for i, t in enumerate(VOCAB)}
    by_len: dict[tuple[int, int], list[int]] = defaultdict(list)
    ids = []
    for i, r in enumerate(rollouts):
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        ids.append((p, [index[t] for t in r["tokens"]]))
        by_len[len(p), len(r["tokens"])].append(i)
    with torch.no_grad():
        for members in by_len.values():
            x = torch.tensor([ids[i][0] + ids[i][1] for i in members])
            start = len(ids[members[0]][0]) - 1
            ls = torch.log_softmax(student(input_ids=x).logits[:, start:-1].float(), -1)
            lt = torch.log_softmax(teacher(input_ids=x).logits[:, start:-1].float(), -1)
            t_arg, s_arg = lt.argmax(-1), ls.argmax(-1)
            lp_teacher_tok = ls.gather(-1, t_arg[..., None])[..., 0]
            fkl = (lt.exp() * (lt - ls)).sum(-1)
            rkl = (ls.exp() * (ls - lt)).sum(-1)
            for j, i in enumerate(members):
                r = rollouts[i]
                r["teacher_argmax"] = [VOCAB[k] for k in t_arg[j].tolist()]
                r["student_argmax"] = [VOCAB[k] for k in s_arg[j].tolist()]
                r["logp_teacher_token"] = lp_teacher_tok[j].tolist()
                r["kl_teacher_student"] = fkl[j].tolist()
                r["kl_student_teacher"] = rkl[j].tolist()


def _by_prompt(rollouts: list[dict], value, keep) -> tuple[list[float], list[float]]:
    """Per prompt (cluster): sum of ``value(r, t)`` and count over positions ``t`` of its rollouts where
    ``keep(r, t)``."""
    num, den = defaultdict(float), defaultdict(float)
    for r in rollouts:
        num[r["group"]] += 0.0
        den[r["group"]] += 0.0
        for t in range(len(r["tokens"])):
            if keep(r, t):
                num[r["group"]] += value(r, t)
                den[r["group"]] += 1
    groups = sorted(num)
    return [num[g] for g in groups], [den[g] for g in groups]


def class_selectors() -> dict[str, callable]:
    """``all``, every group and every class -> ``keep(rollout, t)``."""
    from tgpo.lab.positions import CLASSES, GROUP_OF, GROUPS

    sel = {"all": lambda r, t: True}
    for group in GROUPS:
        sel[group] = functools.partial(lambda g, r, t: GROUP_OF[r["classes"][t]] == g, group)
    for cls in CLASSES:
        sel[cls] = functools.partial(lambda c, r, t: r["classes"][t] == c, cls)
    return sel


def disagreement_rows(rollouts: list[dict]) -> list[dict]:
    """Per position class: share of positions (%), teacher argmax != sampled token (%), the student's probability
    of the teacher's argmax (mean with interval; median), and mean per-token KL both ways."""
    out = []
    n_positions = sum(len(r["tokens"]) for r in rollouts)
    for cls, keep in class_selectors().items():
        count = sum(keep(r, t) for r in rollouts for t in range(len(r["tokens"])))
        if not count:
            continue
        out.append(_point("positions", "share of positions (%)", 100 * count / n_positions, count, cls))
        measures = {
            "teacher argmax != sampled (%)": lambda r, t: 100.0 * (r["teacher_argmax"][t] != r["tokens"][t]),
            "student p(teacher argmax), mean": lambda r, t: float(np.exp(r["logp_teacher_token"][t])),
            "KL(teacher||student) per token": lambda r, t: r["kl_teacher_student"][t],
            "KL(student||teacher) per token": lambda r, t: r["kl_student_teacher"][t],
        }
        for statistic, value in measures.items():
            interval = stats.cluster_ratio_interval(*_by_prompt(rollouts, value, keep))
            out.append(_row("disagreement", statistic, replace(interval, n=count), cls))
        probs = [np.exp(r["logp_teacher_token"][t]) for r in rollouts for t in range(len(r["tokens"])) if keep(r, t)]
        out.append(_point("disagreement", "student p(teacher argmax), median", float(np.median(probs)), count, cls))
    return out


def _continue(student, tok, rollouts: list[dict], prefixes: list[list[str]], cap: int) -> list[bool]:
    """Whether each ``prefix`` (completion tokens) continued greedily by the student is correct (a prefix that ends
    in ``<eos>`` is not continued)."""
    from tgpo.lab.models import generate
    from tgpo.lab.tokenizer import EOS
    from tgpo.lab.world import is_correct

    todo = [i for i, p in enumerate(prefixes) if p[-1:] != [EOS]]
    texts = ["".join(t for t in p if t != EOS) for p in prefixes]
    if todo:
        conts = generate(student, tok, [rollouts[i]["prompt"] + texts[i] for i in todo], max_new_tokens=cap)
        for i, cont in zip(todo, conts):
            texts[i] += cont
    return [is_correct(text, r["answer"]) for text, r in zip(texts, rollouts)]


def first_errors(rollouts: list[dict], world=None) -> list[tuple[dict, int, frozenset]]:
    """``(rollout, index, correct tokens there)`` of each wrong rollout with a first error (:func:`first_error`) in
    ``world``'s grammar (default: v1's)."""
    from tgpo.lab.config import WORLD
    from tgpo.lab.positions import first_error, operands_of

    out = []
    for r in rollouts:
        if not r["correct"]:
            found = first_error(operands_of(r["prompt"]), r["tokens"], world or WORLD)
            if found is not None:
                out.append((r, *found))
    return out


def group_outcomes(correct: list[bool], group_size: int) -> tuple[list[bool], list[bool]]:
    """Per consecutive group of ``group_size`` rewards (TRL's layout: a prompt's rollouts are adjacent): (all wrong,
    all right)."""
    if len(correct) % group_size:
        raise ValueError(f"{len(correct)} outcomes do not split into groups of {group_size}")
    groups = np.asarray(correct, dtype=bool).reshape(-1, group_size)
    return (~groups.any(1)).tolist(), groups.all(1).tolist()


def _clustered(pairs: list[tuple[int, float]], n_groups: int) -> stats.Interval:
    """Ratio interval of per-unit values clustered by group: ``pairs`` of ``(group, value)``."""
    num, den = np.zeros(n_groups), np.zeros(n_groups)
    for g, v in pairs:
        num[g] += v
        den[g] += 1
    return replace(stats.cluster_ratio_interval(num, den), n=len(pairs))


def first_error_rows(student, tok, rollouts: list[dict], cap: int, world=None) -> list[dict]:
    n_groups = 1 + max(r["group"] for r in rollouts)
    wrong = [r for r in rollouts if not r["correct"]]
    found = first_errors(rollouts, world)
    all_wrong_groups = {g for g, aw in enumerate(group_outcomes([r["correct"] for r in rollouts],
                                                                len(rollouts) // n_groups)[0]) if aw}
    out = [_point("rollouts", "sampled accuracy (%)", 100 * (1 - len(wrong) / len(rollouts)), len(rollouts)),
           _point("first error", "wrong rollouts with a first error", len(found), len(wrong))]
    if not found:
        return out
    for cls, keep in class_selectors().items():
        if cls in ("all", "other") or cls in ("content", "style", "structure"):
            continue
        share = _clustered([(r["group"], 100.0 * keep(r, i)) for r, i, _ in found], n_groups)
        if share.mean > 0:
            out.append(_row("first error", "where (% of first errors)", share, cls))
    t_ok = [(r["group"], 100.0 * (r["teacher_argmax"][i] in allowed)) for r, i, allowed in found]
    s_ok = [(r["group"], 100.0 * (r["student_argmax"][i] in allowed)) for r, i, allowed in found]
    out.append(_row("first error", "teacher argmax correct (%)", _clustered(t_ok, n_groups)))
    out.append(_row("first error", "teacher argmax correct, all-wrong groups (%)",
                    _clustered([p for p in t_ok if p[0] in all_wrong_groups], n_groups)))
    out.append(_row("first error", "student argmax correct (%)", _clustered(s_ok, n_groups)))
    items = [r for r, _, _ in found]
    t_fix = _continue(student, tok, items, [r["tokens"][:i] + [r["teacher_argmax"][i]] for r, i, _ in found], cap)
    s_fix = _continue(student, tok, items, [r["tokens"][:i] for r, i, _ in found], cap)
    out.append(_row("first error", "teacher token + student greedy fixes (%)",
                    _clustered([(r["group"], 100.0 * f) for r, f in zip(items, t_fix)], n_groups)))
    out.append(_row("first error", "student greedy from the prefix fixes (%)",
                    _clustered([(r["group"], 100.0 * f) for r, f in zip(items, s_fix)], n_groups)))
    # Correct rollouts: the teacher's argmax at the first step start (class "order") where it differs from the sample.
    right = [r for r in rollouts if r["correct"]]
    hit = [(r, next((t for t, c in enumerate(r["classes"]) if c == "order" and r["teacher_argmax"][t] != r["tokens"][t]),
                    None)) for r in right]
    hit = [(r, t) for r, t in hit if t is not None]
    out.append(_row("correct rollouts", "disagree with the teacher at a step start (%)",
                    _clustered([(r["group"], 100.0 * any(h is r for h, _ in hit)) for r in right], n_groups)))
    if hit:
        kept = _continue(student, tok, [r for r, _ in hit], [r["tokens"][:t] + [r["teacher_argmax"][t]] for r, t in hit], cap)
        out.append(_row("correct rollouts", "still correct after the teacher's step-start token (%)",
                        _clustered([(r["group"], 100.0 * k) for (r, _), k in zip(hit, kept)], n_groups)))
    return out


# --------------------------------------------------------------------------- reading committed regime files
def committed(profile: str, student: str, teacher: str, split: str) -> pd.DataFrame:
    """The committed ``results/<profile>/regime_<student>_<teacher>_<split>.csv`` (what this script wrote with the
    default name); a missing file is a one-line :class:`UsageError` naming the command that makes it."""
    path = RESULTS / profile / f"regime_{student}_{teacher}_{split.replace('+', '')}.csv"
    if not path.exists():
        raise UsageError(f"no regime statistics for {student}, {teacher}, RL split {split}: {path} does not exist; "
                         f"make it with python -m repro.regime --student {student} --teacher {teacher} --rl-split {split}")
    return pd.read_csv(path)


#: A teacher's measured divergence from the student on the student's own rollouts, as the regime map and the sweep
#: show it: label -> (section, statistic, position class) of a regime file.
DIVERGENCE = {
    "KL(teacher‖student) per token": ("disagreement", "KL(teacher||student) per token", "all"),
    "content disagreement (%)": ("disagreement", "teacher argmax != sampled (%)", "content"),
    "style disagreement (%)": ("disagreement", "teacher argmax != sampled (%)", "style"),
}


def divergence(profile: str, student: str, teacher: str, split: str) -> dict[str, float]:
    """The :data:`DIVERGENCE` statistics of ``teacher`` against ``student`` on RL split ``split``, from the committed
    regime file (:func:`committed`: a missing one is a one-line error naming the command that makes it)."""
    frame = committed(profile, student, teacher, split)
    return {label: statistic(frame, *where)[0] for label, where in DIVERGENCE.items()}


def statistic(frame: pd.DataFrame, section: str, name: str, cls: str | None = None) -> tuple[float, float, float]:
    """``(value, low, high)`` of one statistic of a regime file (``cls``: its position class, where it has one)."""
    hit = frame[(frame["section"] == section) & (frame["statistic"] == name)]
    if cls is not None:
        hit = hit[hit["cls"] == cls]
    if hit.empty:
        raise UsageError(f"regime file: no {section!r} / {name!r}{f' / {cls!r}' if cls else ''} row (remake it with "
                         "python -m repro.regime)")
    row = hit.iloc[0]
    return float(row["value"]), float(row["low"]), float(row["high"])


# --------------------------------------------------------------------------- lab training runs
@contextlib.contextmanager
def lab_trainer(args, table, method: str, trainer_cfg: dict, train_size: int, teacher: str | None = None):
    """A :class:`~tgpo.trainer.TGPOTrainer` of ``method`` built as the lab's jobs build theirs (a
    :class:`~repro.lab_runner.LabJob` through :func:`~repro.lab_runner.run_config` and the preset ``args.preset``), with
    ``trainer_cfg`` (TGPOConfig fields), ``train_size`` prompts of the RL split ``args.rl_split`` (the table's data
    seed) and seed ``args.seed``, in a temporary folder that lives as long as the context."""
    # A private name on purpose: repro/lab_runner.py is part of every lab run's cache key (repro/run_cache.py), so a
    # rename there alone would orphan every cached run.
    from repro.lab_runner import LabJob, run_config
    from repro.lab_runner import _write_train_jsonl as write_train_jsonl
    from tgpo.train_cli import build_trainer

    with tempfile.TemporaryDirectory(prefix="tgpo-regime-") as work:
        job = LabJob(name=f"regime-{method}-{args.rl_split}", row=method, label=method, variant=None, method=method,
                     seed=args.seed, student=args.student, teacher=teacher, preset=args.preset, trainer=trainer_cfg,
                     train_size=train_size, data_seed=table.get("data_seed", 0), rl_split=args.rl_split,
                     eval_tasks="", eval_limit=None, eval_batch_size=1, work_dir=work)
        data = write_train_jsonl(Path(work) / "train.jsonl", job)
        yield build_trainer(run_config(job, data_path=str(data), output_dir=str(Path(work) / "model")))


# --------------------------------------------------------------------------- GRPO group shares
def grpo_groups(args, table, trainer: dict | None = None) -> pd.DataFrame:
    """Train GRPO for ``args.grpo_steps`` steps with the recipe's trainer settings (``trainer``: those with the world's
    completion cap) on the RL split and record, per step, the share of all-wrong and all-right groups (from the rewards
    themselves), TRL's ``frac_reward_zero_std`` and the mean reward."""
    trainer_cfg = dict(trainer or table.trainer)
    generations = trainer_cfg.get("num_generations", 8)
    per_step = trainer_cfg["per_device_train_batch_size"] // generations
    trainer_cfg["max_steps"] = args.grpo_steps
    with lab_trainer(args, table, "grpo", trainer_cfg, per_step * args.grpo_steps) as trainer:
        groups: list[dict] = []
        # Wrap TRL's reward function (same name, same values) to see each group's rewards, which TRL logs only as
        # frac_reward_zero_std (all-wrong and all-right groups together).
        reward = trainer.reward_funcs[0]

        @functools.wraps(reward)
        def recording_reward(*a, **kw):
            values = reward(*a, **kw)
            wrong, right = group_outcomes([v > 0 for v in values], generations)
            groups.append({"step": trainer.state.global_step + 1, "all_wrong": wrong, "all_right": right})
            return values

        trainer.reward_funcs[0] = recording_reward
        trainer.train()
        logged = {e["step"]: e for e in trainer.state.log_history if "frac_reward_zero_std" in e}
    rows = []
    for g in groups:
        entry = logged.get(g["step"], {})
        rows.append({"step": g["step"], "groups": len(g["all_wrong"]),
                     "all_wrong": float(np.mean(g["all_wrong"])), "all_right": float(np.mean(g["all_right"])),
                     "frac_reward_zero_std": entry.get("frac_reward_zero_std"), "reward": entry.get("reward"),
                     "_wrong": g["all_wrong"], "_right": g["all_right"]})
    return pd.DataFrame(rows)


def group_rows(curve: pd.DataFrame, steps: int) -> list[dict]:
    if curve.empty:  # --grpo-steps 0
        return []
    wrong = [100.0 * v for flags in curve["_wrong"] for v in flags]
    right = [100.0 * v for flags in curve["_right"] for v in flags]
    span = f"steps 1-{steps}"
    out = [_row("GRPO groups", f"all-wrong groups (%), {span}", stats.t_interval(wrong)),
           _row("GRPO groups", f"all-right groups (%), {span}", stats.t_interval(right)),
           _point("GRPO groups", f"frac_reward_zero_std (%), {span}", 100 * float(curve["frac_reward_zero_std"].mean()),
                  len(curve)),
           _point("GRPO groups", f"reward, {span}", float(curve["reward"].mean()), len(curve))]
    first = curve.iloc[0]
    out.append(_row("GRPO groups", "all-wrong groups (%), step 1", stats.t_interval([100.0 * v for v in first["_wrong"]])))
    return out


# --------------------------------------------------------------------------- guidance gradient by position class
GUIDANCE = "_guidance"  # its files: regime_<name>_guidance.{csv,md} and manifest
#: The guided method whose guidance gradient is split (TGPO-Reg: GRPO + lambda_k * CE toward the teacher's argmax),
#: trained as Table 1's row of it (the recipe's trainer and its guidance schedule).
GUIDED = "tgpo"
GUIDANCE_COLUMNS = ("step", "guidance_weight", "statistic", "cls", "value", "low", "high", "n")
NORM_RATIO = "||grad_h guidance|| / ||grad_h pg||"
#: step_statistics key -> the statistic's name in the files.
GUIDANCE_SHARES = {"guidance": "guidance gradient (% of its squared norm at h)",
                   "pg": "policy-gradient gradient (% of its squared norm at h)",
                   "share_of_positions": "positions (% of the completion tokens the loss reads)"}


def guidance_steps(args, table) -> list[int]:
    """The steps measured: ``--guidance-at`` up to ``--guidance-steps``, and the last; a step where the TGPO-Reg row's
    schedule has reached 0 (no guidance term) is bad input."""
    from tgpo.objectives import guidance_weight

    schedule = table.select([GUIDED])[0].trainer
    steps = sorted({s for s in args.guidance_at if s <= args.guidance_steps} | {args.guidance_steps})
    zero = [s for s in steps if guidance_weight(s, schedule["guidance_weight"], schedule["guidance_decay"],
                                                schedule.get("guidance_min", 0.0)) <= 0]
    if zero:
        raise UsageError(f"--guidance-steps {args.guidance_steps} / --guidance-at: TGPO-Reg's guidance weight "
                         f"(repro/configs/lab/{RECIPE}.yaml) is 0 at step {zero[0]}, so there is no guidance term to "
                         "measure there; choose earlier steps")
    return steps


def guidance_run(args, table, trainer: dict, measured: list[int]) -> list[dict]:
    """Train TGPO-Reg (Table 1's row, teacher ``args.teacher``, RL split ``args.rl_split``, seed ``args.seed``) for
    ``args.guidance_steps`` steps and split both loss terms' gradients at the final hidden states by position class at
    the steps ``measured`` (:func:`repro.guidance_share.step_statistics` of each, with ``logged_share``: the
    trainer's own ``guidance/grad_share`` of that step).

    Each step is measured on its own batch (the 64 prompts x 8 rollouts that the policy taking the step sampled, after
    ``step - 1`` updates), through the trainer's own loss terms: no extra generation or teacher pass, and the shares
    are those of the gradient that step applies. A fixed probe batch would remove the batch-to-batch variation but
    measure later policies on rollouts they no longer sample. The data are Table 1's (its ``train_size`` prompts of the
    split, its data seed), so with the same seed the batches are those of the lab's TGPO-Reg run."""
    from repro.guidance_share import GuidanceShareProbe, step_statistics

    row = table.select([GUIDED])[0]
    cfg = {**trainer, **row.trainer, "max_steps": args.guidance_steps, "log_guidance_share": True,
           "guidance_share_every": 1}  # the trainer hands the probe its terms at every step; it keeps `measured`
    per_step = cfg["per_device_train_batch_size"] // cfg.get("num_generations", 8)
    train_size = max(row.train_size or table.get("train_size") or 0, per_step * args.guidance_steps)
    with lab_trainer(args, table, GUIDED, cfg, train_size, teacher=args.teacher) as run:
        probe = GuidanceShareProbe(run, measured)
        run.train()
        logged = {e["step"]: e["guidance/grad_share"] for e in run.state.log_history if "guidance/grad_share" in e}
    by_step = defaultdict(list)
    for batch in probe.batches:
        by_step[batch["step"]].append(batch)
    missing = [s for s in measured if s not in by_step]
    if missing:  # never a file that looks complete without them
        raise RuntimeError(f"TGPO-Reg computed no guidance term at step(s) {missing} (guidance weight 0 or no teacher)")
    return [{**step_statistics(by_step[s]), "logged_share": logged.get(s)} for s in measured]


def guidance_rows(steps: list[dict]) -> list[dict]:
    """CSV rows (:data:`GUIDANCE_COLUMNS`) of :func:`guidance_run`'s steps: the norm ratio, then each share per class."""
    out = []
    for m in steps:
        head = {"step": m["step"], "guidance_weight": m["guidance_weight"]}
        out.append({**head, "statistic": NORM_RATIO, "cls": "all", "value": m["norm_ratio"], "low": np.nan,
                    "high": np.nan, "n": m["positions"]})
        for key, statistic in GUIDANCE_SHARES.items():
            out += [{**head, "statistic": statistic, "cls": cls, "value": iv.mean, "low": iv.low, "high": iv.high,
                     "n": iv.n} for cls, iv in m[key].items()]
    return out


def render_guidance(frame: pd.DataFrame, steps: list[dict], args, name: str) -> str:
    lines = [f"# Guidance gradient by position class: {name}", "",
             f"TGPO-Reg (Table 1's lab recipe and guidance schedule, preset `{args.preset}`, seed {args.seed}) trained "
             f"{args.guidance_steps} steps with student `{args.student}`, teacher `{args.teacher}`, RL split "
             f"`{args.rl_split}`. At each measured step, on that step's batch: the guidance term's and the "
             "policy-gradient term's gradients at the student's final hidden states h, split by the position class "
             "(`tgpo/lab/positions.py`) of the completion token each position predicts: share of class c = sum over its "
             "positions of ||grad_h[p]||^2 / ||grad_h||^2 (%; [95% interval] clustered by prompt). The norm ratio "
             "includes lambda_k; the shares do not depend on it. `python -m repro.regime --guidance-only` "
             "(repro/regime.py, repro/guidance_share.py).", "", "## Scale", ""]
    scale = pd.DataFrame({"step": [m["step"] for m in steps], "lambda_k": [m["guidance_weight"] for m in steps],
                          NORM_RATIO: [m["norm_ratio"] for m in steps],
                          "trainer's guidance/grad_share": [m["logged_share"] for m in steps],
                          "positions": [m["positions"] for m in steps]})
    lines += [scale.to_markdown(index=False, floatfmt=("g", ".4g", ".4g", ".4g", "g")), ""]
    for statistic in GUIDANCE_SHARES.values():
        part = frame[frame["statistic"] == statistic]
        cells = part.assign(cell=[_cell(r) for _, r in part.iterrows()])
        table = cells.pivot(index="cls", columns="step", values="cell").reindex(list(dict.fromkeys(part["cls"])))
        table.columns = [f"step {s}" for s in table.columns]
        lines += [f"## {statistic}", "", table.fillna("—").rename_axis("class").to_markdown(), ""]
    return "\n".join(lines)


def guidance_statistics(args, table, trainer: dict, measured: list[int], out_dir: Path, name: str) -> None:
    """``regime_<name>_guidance.{csv,md}`` and its manifest."""
    stem = f"{NAME}_{name}{GUIDANCE}"
    manifest = Manifest(NAME, args, table, [args.seed])
    steps = guidance_run(args, table, trainer, measured)
    frame = pd.DataFrame(guidance_rows(steps), columns=GUIDANCE_COLUMNS)
    frame.to_csv(out_dir / f"{stem}.csv", index=False, float_format="%.6g")
    text = render_guidance(frame, steps, args, name)
    (out_dir / f"{stem}.md").write_text(text)
    manifest.extra = {"regime_guidance": {
        "student": args.student, "teacher": args.teacher, "rl_split": args.rl_split, "method": GUIDED,
        "guidance_steps": args.guidance_steps, "measured_steps": measured, "seed": args.seed,
        "schedule": table.select([GUIDED])[0].trainer, "completion_cap": trainer["max_completion_length"],
        "recipe": f"repro/configs/lab/{RECIPE}.yaml trainer and its {GUIDED} row, preset {args.preset}",
        "trainer_grad_share": {m["step"]: m["logged_share"] for m in steps}}}
    manifest.write(out_dir, stem, [])
    print(text)


# --------------------------------------------------------------------------- output
def _cell(r) -> str:
    if pd.isna(r["value"]):
        return "—"
    if pd.isna(r["low"]):
        return f"{r['value']:.4g}"
    return f"{r['value']:.4g} [{r['low']:.4g}, {r['high']:.4g}]"


def render(frame: pd.DataFrame, curve: pd.DataFrame, args, name: str) -> str:
    lines = [f"# Regime statistics: {name}", "",
             f"Student `{args.student}`, teacher `{args.teacher}`, RL split `{args.rl_split}`; rollouts: {args.prompts} "
             f"prompts x {args.rollouts} at Table 1's lab recipe's temperature and the world's completion cap; GRPO probe: "
             f"{args.grpo_steps} steps (seed {args.seed}). Values with [95% interval]; `python -m repro.regime` "
             "(docstring: definitions).", ""]
    for section, part in frame.groupby("section", sort=False):
        lines += [f"## {section}", ""]
        shown = pd.DataFrame({"statistic": part["statistic"], "class / split": part["cls"],
                              "value": [_cell(r) for _, r in part.iterrows()], "n": part["n"]})
        lines += [shown.to_markdown(index=False, disable_numparse=True), ""]
    if not curve.empty:
        lines += ["## GRPO per step", ""]
        shown = curve[["step", "groups", "all_wrong", "all_right", "frac_reward_zero_std", "reward"]].copy()
        lines += [shown.to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(options.cli(main))
