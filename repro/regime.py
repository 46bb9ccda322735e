"""Regime statistics of a lab setting (student, teacher, RL split), measured before any method is compared.

    python -m repro.regime --teacher teacher_cross [--student student] [--rl-split k4] [--prompts 256] [--rollouts 8]
                           [--grpo-steps 25] [--name NAME]

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
  the answer; and in correct rollouts, what the teacher's token at the first step start where it disagrees does.

The grammar (which solutions are correct: :func:`tgpo.lab.config.grammar_of`) is the student's world's, with the styles
and long steps either model writes; the completion cap is the student's world's (``v2_*`` models: world v2,
:data:`tgpo.lab.config.WORLD_V2`; a cap of None is the recipe's). Intervals: accuracy over problems; group shares over groups; rollout statistics are ratios clustered by prompt
(:func:`repro.stats.cluster_ratio_interval`); ``n`` counts the units (problems, groups, positions, rollouts). Outputs in ``results/lab/``: ``regime_<name>.csv`` (one row per
statistic), ``regime_<name>.md`` and ``regime_<name>_manifest.json``; earlier ones move to ``previous/``.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--seed", type=int, default=0, help="training seed of the GRPO probe")
    parser.add_argument("--name", help="output name (default <student>_<teacher>_<rl-split>)")
    parser.add_argument("--output-dir", type=Path, help="default: results/lab/")
    args = parser.parse_args(argv)
    if args.grpo_steps < 0:
        raise UsageError(f"--grpo-steps {args.grpo_steps}: expected 0 or more")
    args.preset, args.profile = DEFAULT_PRESET["lab"], "lab"
    return args


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
    out_dir = archive(Path(args.output_dir or RESULTS / "lab"), [stem + s for s in SUFFIXES])
    manifest = Manifest(NAME, args, table, [args.seed])
    started = time.time()

    from tgpo.lab.models import load

    student, tok = load(model_dir(args.student))
    teacher, _ = load(model_dir(args.teacher))
    lab_world = grammar_of(Path(args.student).name, Path(args.teacher).name)
    trainer = dict(table.trainer)
    trainer["max_completion_length"] = lab_world.completion_cap or trainer["max_completion_length"]
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
    return 0


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
    """Whether a rollout writes a long step (a token of class ``carried``, :mod:`tgpo.lab.positions`)."""
    return "carried" in rollout["classes"]


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
    (nats, full distributions). Sequences of one length go through each model as one batch (no padding)."""
    import torch

    from tgpo.lab.tokenizer import VOCAB

    index = {t: i for i, t in enumerate(VOCAB)}
    by_len: dict[int, list[int]] = defaultdict(list)
    ids = []
    for i, r in enumerate(rollouts):
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        ids.append((p, [index[t] for t in r["tokens"]]))
        by_len[len(p) + len(r["tokens"])].append(i)
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


# --------------------------------------------------------------------------- GRPO group shares
def grpo_groups(args, table, trainer: dict | None = None) -> pd.DataFrame:
    """Train GRPO for ``args.grpo_steps`` steps with the recipe's trainer settings (``trainer``: those with the world's
    completion cap) on the RL split and record, per step, the share of all-wrong and all-right groups (from the rewards
    themselves), TRL's ``frac_reward_zero_std`` and the mean reward."""
    from repro.lab_runner import LabJob, run_config
    from tgpo.lab.world import rl_split, write_rows
    from tgpo.train_cli import build_trainer

    trainer_cfg = dict(trainer or table.trainer)
    generations = trainer_cfg.get("num_generations", 8)
    per_step = trainer_cfg["per_device_train_batch_size"] // generations
    trainer_cfg["max_steps"] = args.grpo_steps
    with tempfile.TemporaryDirectory(prefix="tgpo-regime-") as work:
        data = Path(work) / "train.jsonl"
        write_rows(data, rl_split(args.rl_split, n=per_step * args.grpo_steps, seed=table.get("data_seed", 0)))
        job = LabJob(name=f"regime-grpo-{args.rl_split}", row="grpo", label="GRPO", variant=None, method="grpo",
                     seed=args.seed, student=args.student, teacher=None, preset=args.preset, trainer=trainer_cfg,
                     train_size=per_step * args.grpo_steps, data_seed=table.get("data_seed", 0),
                     rl_split=args.rl_split, eval_tasks="",
                     eval_limit=None, eval_batch_size=1, work_dir=work)
        trainer = build_trainer(run_config(job, data_path=str(data), output_dir=str(Path(work) / "model")))
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
