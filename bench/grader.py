"""Grader bench: ``python -m bench.grader`` (``nox -s bench`` runs it after ``repro/bench.py``).

Writes ``results/bench/scorer.csv`` (every figure) and ``results/bench/scorer.md`` (a short section):

1. **Agreement with oat-llm.** ``tgpo.grading.oat.oat_boxed_correct`` against oat-llm's own
   ``boxed_reward_fn(response, gold, fast=False)`` on (completion, gold) pairs generated at run time from the
   benchmark files in ``TGPO_BENCHMARK_DIR``: every gold boxed as is and rewritten (fractions, decimals,
   ``\\text``/units/percent, spacing, assignments), wrong answers (another problem's gold, a changed digit, a
   sign), and format slips (no box, unclosed box, ``\\boxed x``, several boxes, unclosed think). Goal >= 99.5%.
   oat-llm cannot be installed here (Python < 3.11 only), so its grader module is loaded from its wheel:
   ``--oat-grader`` names the wheel or ``math_grader.py``; without it the wheel is fetched with
   ``pip download oat-llm==0.2.4``. Nothing of oat is committed. Both graders call the installed math-verify here
   (ours without its math-verify 0.6.0 compatibility layer, which ``python -m bench.mathverify_compat``
   measures), so this compares the re-implementation, not the library versions.
2. **Disagreement of the two grades** (strict vs the authors' rule) per benchmark on the same pairs.
3. **Throughput**: 1,000 realistic completions (about 4k characters, think block, half LaTeX answers, half
   right), both grades, through ``tgpo.grading.grade_batch`` on all workers. Goal >= 300 completions/s on 2 cores.
4. **Adversarial bounds**: the slowest single verdict (both protocols) on inputs built to stall a grader.
   Goal < 5 s. And ``choice_correct`` on 8,000 and 16,000 unclosed boxes (linear: about twice the time).

``--quick`` shrinks every set (a smoke run for tests).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

from bench import option_or_variable
from tgpo.cli import OneLineParser, output_folder

os.environ.setdefault("OMP_NUM_THREADS", "1")

OUT = Path(__file__).resolve().parents[1] / "results" / "bench"
PROG = "python -m bench.grader"
OAT_VERSION = "0.2.4"
MATH = ("math500", "aime24", "aime25", "amc", "minerva_math", "olympiadbench")
CHOICE = ("gpqa_diamond", "mmlu_pro", "arc_challenge")
AGREEMENT_GOAL = 0.995
THROUGHPUT_GOAL = 300.0
SLOWEST_GOAL_S = 5.0


# --------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------


def read_benchmarks(data_dir: Path) -> dict[str, list[dict]]:
    """Rows of every benchmark file present in ``data_dir`` (missing ones are skipped, and said so)."""
    from tgpo.tasks.utils import normalise_choice_row, read_jsonl

    rows = {}
    for name in MATH + CHOICE:
        path = data_dir / f"{name}.jsonl"
        if not path.is_file():
            print(f"[bench.grader] {path} not found: {name} left out")
            continue
        rows[name] = [normalise_choice_row(r) if name in CHOICE else r for r in read_jsonl(path)]
    return rows


_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_FRAC = re.compile(r"^\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
_INT = re.compile(r"^-?\d+(?:\.0+)?$")


def math_forms(gold: str) -> list[str]:
    """Correct ways of writing ``gold`` (as a model might), the gold itself first."""
    g = gold.strip()
    bare = _UNESCAPED_DOLLAR.sub("", g)
    forms = [g, bare, f" {bare} ", f"x = {bare}", f"\\left({bare}\\right)" if "," in bare else f"{{{bare}}}"]
    if _INT.match(bare):
        n = int(float(bare))
        forms += [str(n), f"{n}.0", f"\\text{{{n}}}", f"\\textbf{{{n}}}", f"{n}\\%", f"{n}^\\circ", f"{n} \\text{{ cm}}",
                  f"{n:,}", f"{n:,}".replace(",", "{,}"), f"\\mathbf{{{n}}}"]
    m = _FRAC.match(bare)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        forms += [f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\frac{{{2 * a}}}{{{2 * b}}}", f"{a / b:.6g}", f"\\tfrac{a}{b}"
                  if abs(a) < 10 and b < 10 else f"\\frac {{{a}}} {{{b}}}"]
    if "\\frac" in bare:
        forms += [bare.replace("\\frac", "\\dfrac"), bare.replace(" ", "")]
    if "\\sqrt" in bare:
        forms += [bare.replace("\\sqrt", "\\sqrt "), re.sub(r"\\sqrt\{(\w)\}", r"\\sqrt\1", bare)]
    if "\\pi" in bare:
        forms.append(bare.replace("\\pi", "\\pi "))
    return list(dict.fromkeys(f for f in forms if f.strip()))


def wrong_forms(gold: str, other: str, rng: random.Random) -> list[str]:
    bare = _UNESCAPED_DOLLAR.sub("", gold.strip())
    digits = [i for i, c in enumerate(bare) if c.isdigit()]
    changed = bare
    if digits:
        i = rng.choice(digits)
        changed = bare[:i] + str((int(bare[i]) + rng.randint(1, 8)) % 10) + bare[i + 1 :]
    return list(dict.fromkeys([_UNESCAPED_DOLLAR.sub("", other), changed, f"-{bare}" if not bare.startswith("-") else bare[1:],
                               "\\text{no idea}", f"{bare}+1"]))


def wrap(answer: str, style: str, rng: random.Random) -> str:
    """A completion whose final answer is ``answer``, in one of several formats."""
    think = f"<think>\nLet me work through this. Step {rng.randint(1, 99)}: we simplify and check.\n</think>\n"
    return {
        "boxed": f"{think}So the final answer is $\\boxed{{{answer}}}$.",
        "boxed_no_think": f"Working it out, the answer is \\boxed{{{answer}}}",
        "two_boxes": f"{think}First guess \\boxed{{0}}, then correcting: \\boxed{{{answer}}}",
        "plain": f"{think}The answer is {answer}.",
        "final_answer": f"{think}**Final Answer:** ${answer}$",
        "unclosed_think": f"<think>\nSo it is \\boxed{{{answer}}} and then I keep going",
        "unclosed_box": f"{think}Thus \\boxed{{{answer}",
        "space_box": f"{think}Thus \\boxed {answer}",
        "fbox": f"{think}Thus \\fbox{{{answer}}}",
    }[style]


STYLES_RIGHT = ("boxed", "boxed", "boxed", "boxed_no_think", "two_boxes", "plain", "final_answer", "unclosed_think",
                "unclosed_box", "space_box", "fbox")


def agreement_pairs(rows: dict[str, list[dict]], per_benchmark: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(benchmark, completion, gold)``: right forms in several formats and wrong answers, per benchmark."""
    rng = random.Random(seed)
    pairs = []
    for name, items in rows.items():
        golds = [str(r["answer"]) for r in items]
        bucket = []
        for r in items:
            gold = str(r["answer"])
            if name in CHOICE:
                letter = gold.strip().upper()
                wrong = rng.choice([c for c in "ABCD" if c != letter])
                answers = [letter, f"({letter})", f"\\text{{{letter}}}", f"{letter}) the option", wrong]
            else:
                answers = math_forms(gold) + wrong_forms(gold, rng.choice(golds), rng)
            for answer in answers:
                bucket.append((name, wrap(answer, rng.choice(STYLES_RIGHT), rng), gold))
        rng.shuffle(bucket)
        pairs += bucket[:per_benchmark]
    return pairs


LATEX_FILLER = [
    "Let $x$ be the unknown. Then $x^2 + 3x - 4 = 0$, so $(x+4)(x-1) = 0$.",
    "We have $\\frac{a}{b} = \\frac{3}{4}$ and $a + b = 21$, hence $a = 9$.",
    "Consider the triangle with sides $3$, $4$, $5$; its area is $\\frac{1}{2} \\cdot 3 \\cdot 4 = 6$.",
    "Wait, let me double-check: $\\sqrt{2} \\approx 1.414$ and $2^{10} = 1024$.",
    "So the sum is $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$ for $n = 10$, which is $55$.",
    "Hmm, that does not look right. Let me reconsider the constraint $0 < y \\le 7$.",
]


def realistic_completions(rows: dict[str, list[dict]], n: int, per_problem: int, seed: int = 1) -> list[tuple[str, str]]:
    """``n`` completions of about 4k characters (a think block with LaTeX, then the boxed answer), ``per_problem``
    samples per problem as an evaluation draws them; half the problems have a LaTeX gold. Each sample is right
    (one of the gold's usual forms) or wrong (one of two wrong answers of its problem) with even odds, so
    answers repeat within a problem as a model's samples do; every completion's text is distinct."""
    rng = random.Random(seed)
    latex = [str(r["answer"]) for name in MATH if name in rows for r in rows[name] if "\\" in str(r["answer"])]
    plain = [str(r["answer"]) for name in MATH if name in rows for r in rows[name] if "\\" not in str(r["answer"])]
    out = []
    for p in range((n + per_problem - 1) // per_problem):
        gold = rng.choice((latex or plain) if p % 2 else (plain or latex))  # a set with golds of one kind only
        right = math_forms(gold)[:3]
        wrong = wrong_forms(gold, rng.choice(plain or latex), rng)[:2]
        for _ in range(per_problem):
            answer = rng.choice(right) if rng.random() < 0.5 else rng.choice(wrong)
            think = [f"<think>\nAttempt {len(out)}."]
            while sum(len(t) for t in think) < 3600:
                think.append(rng.choice(LATEX_FILLER))
            boxed = _UNESCAPED_DOLLAR.sub("", answer)
            out.append((" ".join(think) + f"\n</think>\nPutting it together, the answer is $\\boxed{{{boxed}}}$.", gold))
    return out[:n]


def adversarial_cases() -> list[tuple[str, str, str, str]]:
    """``(name, completion, gold, kind)``: inputs built to stall a grader."""
    pad = "Let me think. " * 300
    return [
        ("power tower 9^9^9^9", r"\boxed{9^{9^{9^{9}}}}", "1", "math"),
        ("power tower 10^10^10", r"\boxed{10^{10^{10}}}", "7", "math"),
        ("factorial 100000!", r"\boxed{100000!}", "1", "math"),
        ("3,000 nested parentheses", r"\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}", "1", "math"),
        ("5,000-term sum", r"\boxed{" + "x+" * 5000 + "1}", "1", "math"),
        ("20,000 unclosed braces", "\\boxed{" + "{" * 20000, "1", "math"),
        ("200 nested fractions", "\\boxed{\\frac{\\frac{\\frac{1}{2}}{3}}{" * 200, "1", "math"),
        ("20,000 unclosed boxes", "\\boxed{" * 20000, "1", "math"),
        ("500k characters", "x" * 500_000, "1", "math"),
        ("repetitive 2k-char answer", pad + "\\boxed{" + "ab" * 1000 + "}", "ab", "math"),
        ("3,000 dollar pairs", "$1$ " * 3000 + "\\boxed{2}", "2", "math"),
        ("deep LaTeX nesting for pylatexenc", "\\boxed{" + "\\sqrt{" * 500 + "2" + "}" * 500 + "}", "2", "math"),
        ("16,000 unclosed boxes, choice", "\\boxed{" * 16000 + " ANSWER: C", "C", "choice"),
        ("long choice with think", "<think>" + pad * 20 + "</think> ANSWER: C", "C", "choice"),
    ]


# --------------------------------------------------------------------------------------------------------
# oat-llm's grader, as the reference
# --------------------------------------------------------------------------------------------------------


def load_oat_reference(path: Path | None):
    """oat-llm's ``boxed_reward_fn``, loaded from its wheel (or its ``math_grader.py``) without installing oat;
    ``None`` when the wheel cannot be fetched."""
    tmp = Path(tempfile.mkdtemp(prefix="oat-grader-"))
    if path is None:
        cmd = [sys.executable, "-m", "pip", "download", f"oat-llm=={OAT_VERSION}", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.10", "-d", str(tmp), "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(tmp.glob("oat_llm-*.whl"))
        if done.returncode or not wheels:
            print(f"[bench.grader] agreement not measured: could not fetch oat-llm's wheel "
                  f"({done.stderr.strip()[-200:]}); pass --oat-grader")
            return None
        path = wheels[0]
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            (tmp / "oat_math_grader.py").write_bytes(zf.read("oat/utils/math_grader.py"))
        path = tmp / "oat_math_grader.py"
    spec = importlib.util.spec_from_file_location("oat_math_grader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.boxed_reward_fn  # AttributeError (main's one line) when the file is not oat's grader


class _Alarm(Exception):
    pass


def _bounded(fn, seconds: int = 10):
    def handler(signum, frame):
        raise _Alarm

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        return fn()
    except _Alarm:
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------------------


def measure_agreement(pairs, reference) -> dict:
    import logging

    from bench.mathverify_compat import installed_math_verify
    from tgpo.grading.oat import oat_boxed_correct

    logging.disable(logging.WARNING)  # Math-Verify and pylatexenc warn on every call
    same, differ, skipped = 0, [], 0
    with installed_math_verify():  # oat-llm's grader calls the installed math-verify: ours does the same here
        for bench, completion, gold in pairs:
            ref = _bounded(lambda c=completion, g=gold: reference(c, g, fast=False)[1] == 1.0)
            ours = _bounded(lambda c=completion, g=gold: oat_boxed_correct(c, g))
            if ref is None or ours is None:
                skipped += 1
                continue
            if ref == ours:
                same += 1
            else:
                differ.append((bench, completion[-80:], gold, ref, ours))
    logging.disable(logging.NOTSET)
    n = same + len(differ)
    return {"n": n, "agree": same / n if n else float("nan"), "differ": differ, "skipped": skipped}


def measure_disagreement(pairs) -> dict[str, dict]:
    from tgpo.grading import grade_batch

    by_bench = defaultdict(list)
    for bench, completion, gold in pairs:
        by_bench[bench].append((completion, gold))
    out = {}
    for bench, items in by_bench.items():
        kind = "choice" if bench in CHOICE else "math"
        verdicts = grade_batch([c for c, _ in items], [g for _, g in items], kind=kind)
        n = len(verdicts)
        out[bench] = {
            "n": n,
            "strict": sum(v.strict for v in verdicts) / n,
            "authors": sum(v.authors for v in verdicts) / n,
            "disagreement": sum(v.strict != v.authors for v in verdicts) / n,
            "authors_only": sum(v.authors and not v.strict for v in verdicts),
            "strict_only": sum(v.strict and not v.authors for v in verdicts),
        }
    return out


def _worker_cpu_seconds() -> float | None:
    """CPU seconds used so far by the grader's worker processes (Linux /proc; ``None`` elsewhere)."""
    from tgpo.grading import pool

    try:
        total = 0.0
        for pid in pool._POOL.pids():  # the bench reads the pool's bookkeeping; nothing else does
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total
    except (OSError, ValueError, AttributeError):
        return None


def measure_throughput(completions) -> dict:
    """Completions per second through ``grade_batch`` (both grades), after the workers have started: wall clock
    (what this machine gave, load included) and the CPU cost, which gives the rate of dedicated cores."""
    from tgpo.grading import grade_batch, warmup

    warmup()
    cpu0, own0, t = _worker_cpu_seconds(), time.process_time(), time.perf_counter()
    verdicts = grade_batch([c for c, _ in completions], [g for _, g in completions])
    seconds = time.perf_counter() - t
    cpu1, own = _worker_cpu_seconds(), time.process_time() - own0
    n = len(completions)
    cpu = None if cpu0 is None or cpu1 is None or cpu1 < cpu0 else cpu1 - cpu0 + own
    return {"n": n, "per_s": n / seconds, "seconds": seconds, "cpu_s": cpu,
            "per_s_2_cores": None if not cpu else 2 * n / cpu,
            "chars": sum(len(c) for c, _ in completions) / n,
            "strict": sum(v.strict for v in verdicts) / n, "authors": sum(v.authors for v in verdicts) / n}


def measure_adversarial(cases) -> list[dict]:
    from tgpo.grading import choice_correct, math_correct

    out = []
    for name, completion, gold, kind in cases:
        fn = choice_correct if kind == "choice" else math_correct
        for protocol in ("strict", "authors"):
            t = time.perf_counter()
            verdict = fn(completion, gold, protocol=protocol)
            out.append({"case": name, "protocol": protocol, "seconds": time.perf_counter() - t, "verdict": verdict})
    return out


def measure_choice_scaling() -> dict:
    from tgpo.grading import choice_correct

    times = {}
    for n in (8000, 16000):
        text = "\\boxed{" * n + " ANSWER: C"
        t = time.perf_counter()
        choice_correct(text, "C")
        times[n] = time.perf_counter() - t
    return times


# --------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------


def write_outputs(out: Path, agreement, disagreement, throughput, adversarial, scaling, info) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if agreement is not None:
        rows.append(("agreement", f"oat-llm {OAT_VERSION} boxed_reward_fn(fast=False)", f"{agreement['agree']:.4f}",
                     "fraction", agreement["n"], f"goal >= {AGREEMENT_GOAL}"))
    for bench, d in disagreement.items():
        rows.append(("disagreement", bench, f"{d['disagreement']:.4f}", "fraction of samples", d["n"],
                     f"strict {d['strict']:.3f}, authors {d['authors']:.3f}"))
    for label, tp in throughput.items():
        rows.append(("throughput", f"{label}: wall clock", f"{tp['per_s']:.0f}", "completions/s (2 verdicts each)",
                     tp["n"], f"this machine, load average {info['load']}"))
        if tp["per_s_2_cores"]:
            rows.append(("throughput", f"{label}: 2 dedicated cores", f"{tp['per_s_2_cores']:.0f}",
                         "completions/s (2 verdicts each)", tp["n"],
                         f"{1000 * tp['cpu_s'] / tp['n']:.1f} CPU ms per completion; goal >= {THROUGHPUT_GOAL:.0f} verdicts/s"))
    worst = max(adversarial, key=lambda r: r["seconds"])
    rows.append(("adversarial", "slowest single verdict", f"{worst['seconds']:.2f}", "s", len(adversarial),
                 f"{worst['case']} ({worst['protocol']}); goal < {SLOWEST_GOAL_S:.0f}"))
    for n, s in scaling.items():
        rows.append(("choice_scaling", f"{n} unclosed boxes", f"{s:.4f}", "s", 1, "linear: 16k about 2x 8k"))
    csv_path = out / "scorer.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["section", "name", "value", "unit", "n", "note"])
        w.writerows(rows)
    md = ["## Scorer (`python -m bench.grader`)", "",
          f"{info['machine']}; load average at start {info['load']}. Figures in `scorer.csv`.", ""]
    if agreement is not None:
        ok = "met" if agreement["agree"] >= AGREEMENT_GOAL else "NOT met"
        md += [f"- **Agreement with oat-llm's `boxed_reward_fn(fast=False)`**: {100 * agreement['agree']:.2f}% of "
               f"{agreement['n']} generated pairs ({ok}: goal >= {100 * AGREEMENT_GOAL:.1f}%; {agreement['skipped']} "
               "pairs over 10 s in either grader left out)."]
        for bench, tail, gold, ref, ours in agreement["differ"][:10]:
            md.append(f"  - differs ({bench}): gold `{gold}`, completion ends `…{tail!r}`: oat {ref}, ours {ours}")
    else:
        md.append("- Agreement with oat-llm: not measured (no oat-llm wheel).")
    md.append("- **Throughput**, both grades of every completion (~4k characters: a think block with LaTeX, then "
              "the boxed answer; half the golds LaTeX, half the answers right), through `grade_batch` on all workers:")
    for label, tp in throughput.items():
        line = f"  - {label}: {tp['per_s']:.0f} completions/s wall clock here ({2 * tp['per_s']:.0f} verdicts/s)"
        if tp["per_s_2_cores"]:
            goal = "met" if 2 * tp["per_s_2_cores"] >= THROUGHPUT_GOAL else "NOT met"
            line += (f"; {1000 * tp['cpu_s'] / tp['n']:.1f} CPU ms per completion, so {tp['per_s_2_cores']:.0f} "
                     f"completions/s = {2 * tp['per_s_2_cores']:.0f} verdicts/s on 2 dedicated cores ({goal}: goal >= "
                     f"{THROUGHPUT_GOAL:.0f} verdicts/s)")
        md.append(line + ".")
    md += [
           f"- **Slowest single verdict** on {len(adversarial) // 2} adversarial inputs x 2 protocols: "
           f"{worst['seconds']:.2f} s ({worst['case']}, {worst['protocol']}; goal < {SLOWEST_GOAL_S:.0f} s).",
           f"- **`choice_correct` on unclosed boxes**: 8,000 in {scaling[8000]:.3f} s, 16,000 in {scaling[16000]:.3f} s.",
           "", "Strict grade vs the authors' rule on the generated pairs (share of samples graded differently):", "",
           "| benchmark | pairs | strict | authors | disagreement | authors only | strict only |", "|---|---|---|---|---|---|---|"]
    for bench, d in disagreement.items():
        md.append(f"| {bench} | {d['n']} | {100 * d['strict']:.1f}% | {100 * d['authors']:.1f}% | "
                  f"{100 * d['disagreement']:.1f}% | {d['authors_only']} | {d['strict_only']} |")
    md_path = out / "scorer.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return [csv_path, md_path]


def _oat_grader(text: str) -> Path:
    """``--oat-grader``: an existing wheel (``.whl``) or Python file (``.py``), refused at parse time otherwise."""
    path = Path(text)
    if not path.is_file() or path.suffix not in (".whl", ".py"):
        raise argparse.ArgumentTypeError(f"{text}: not a file ending .whl or .py")
    return path


def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark-dir", type=Path,
                        help="folder of <benchmark>.jsonl files (default: $TGPO_BENCHMARK_DIR)")
    parser.add_argument("--oat-grader", type=_oat_grader, help="oat-llm's wheel or its oat/utils/math_grader.py")
    parser.add_argument("--no-agreement", action="store_true", help="skip the comparison with oat-llm")
    parser.add_argument("--output-dir", type=output_folder, default=OUT)
    parser.add_argument("--quick", action="store_true", help="small sets (a smoke run)")
    args = parser.parse_args(argv)
    source, data_dir = option_or_variable(args.benchmark_dir, "--benchmark-dir", "TGPO_BENCHMARK_DIR")
    if not data_dir:
        parser.error("give --benchmark-dir (or set TGPO_BENCHMARK_DIR): the folder of the benchmark files")
    if not Path(data_dir).is_dir():
        parser.error(f"{source} {data_dir}: not a folder")
    from tgpo.tasks import BenchmarkDataError

    try:
        rows = read_benchmarks(Path(data_dir))
    except BenchmarkDataError as err:  # its message names the file and the line
        parser.error(str(err))
    if not any(rows.get(name) for name in MATH):  # the throughput and agreement sets are drawn from math golds
        parser.error(f"{source} {data_dir}: no math benchmark rows ({', '.join(f'{m}.jsonl' for m in MATH)})")
    reference = None
    if not args.no_agreement:
        try:
            reference = load_oat_reference(args.oat_grader)
        except (zipfile.BadZipFile, KeyError, SyntaxError, ImportError, AttributeError) as err:
            what = f"--oat-grader {args.oat_grader}" if args.oat_grader else f"oat-llm {OAT_VERSION}'s fetched wheel"
            parser.error(f"{what}: not oat-llm's wheel or math_grader.py ({type(err).__name__}: {err})")
    info = {"cpus": os.cpu_count(), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
            "load": ", ".join(f"{x:.2f}" for x in os.getloadavg())}
    per_bench = 40 if args.quick else 400
    pairs = agreement_pairs(rows, per_bench)
    print(f"[bench.grader] {len(pairs)} pairs from {len(rows)} benchmarks ({dict(Counter(b for b, _, _ in pairs))})")
    agreement = None
    if reference is not None:
        agreement = measure_agreement(pairs, reference)
        print(f"[bench.grader] agreement with oat-llm: {agreement['agree']:.4f} on {agreement['n']} pairs")
    disagreement = measure_disagreement(pairs)
    n = 200 if args.quick else 1000
    throughput = {
        "8 samples per problem": measure_throughput(realistic_completions(rows, n, per_problem=8, seed=11)),
        "1 sample per problem (no repeats)": measure_throughput(realistic_completions(rows, n, per_problem=1, seed=12)),
    }
    for label, tp in throughput.items():
        print(f"[bench.grader] throughput, {label}: {tp['per_s']:.0f} completions/s wall, "
              f"{tp['per_s_2_cores'] or float('nan'):.0f} on 2 dedicated cores (both grades)")
    cases = adversarial_cases()[:3] if args.quick else adversarial_cases()
    adversarial = measure_adversarial(cases)
    scaling = measure_choice_scaling()
    for p in write_outputs(args.output_dir, agreement, disagreement, throughput, adversarial, scaling, info):
        print(f"wrote {p}")
    print(json.dumps({"slowest": max(r["seconds"] for r in adversarial)}, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
