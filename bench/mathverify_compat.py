"""The authors' grade against the real math-verify 0.6.0: ``python -m bench.mathverify_compat``.

The authors graded (reward and evaluation) with math-verify 0.6.0; the suite installs 0.9 and reproduces 0.6.0's
behaviour on the authors' grade with a small compatibility layer (:mod:`tgpo.grading.mathverify`, docs/method.md
§4). This bench measures how often they agree:

1. It generates cases (``--cases``, default 1,500) from built-in gold forms modelled on the benchmark answers
   (integers, zero-padded and float-written integers, decimals, fractions, radicals, scientific notation, tuples
   and sets, intervals, equations, degrees, percentages, units and text, symbols, choice letters) and response
   templates (one or several boxes, near and far apart, LaTeX or plain answers, ``$``/``\\(``/``\\[`` delimiters,
   thousands separators, percentages, units, equations, negative numbers, think blocks closed or not, truncated
   outputs with no box). Right and wrong answers both. Nothing is read from the benchmark files.
2. It grades every case here (math-verify 0.9 + the compatibility layer) and in a reference interpreter where
   math-verify 0.6.0 is installed (``--reference-python``, default ``$TGPO_MV060_PYTHON``), with the same code of
   the suite around the library. Three verdicts per case: the authors' Math-Verify call
   ``verify(parse("$" + gold + "$"), parse(response))``, the whole authors' evaluation grade (with the oat half),
   and the ``authors_v3`` training reward (on the response after a closed think block, :func:`v3_response`).
3. It writes ``results/bench/mathverify_compat.csv`` (every case, both verdicts of each kind) and
   ``results/bench/mathverify_compat.md`` (agreement rates, every disagreement listed). Goal: >= 99.5%.

A reference interpreter, outside the repository::

    python3 -m venv /tmp/mv060 && /tmp/mv060/bin/pip install "math-verify[antlr4_13_2]==0.6.0" pylatexenc==2.11
    TGPO_MV060_PYTHON=/tmp/mv060/bin/python python -m bench.mathverify_compat
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from bench import option_or_variable
from tgpo.cli import OneLineParser, output_folder, positive_int

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"
PROG = "python -m bench.mathverify_compat"
GOAL = 0.995
KINDS = ("mv", "authors", "authors_v3")

# --------------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------------

#: (category, gold, right answers, wrong answers): gold forms as benchmark answers write them.
GOLDS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("integer", "46", ("46", "46.0", "\\text{46}", "46 \\text{ cm}", "x = 46"), ("47", "-46", "4.6")),
    ("integer", "720", ("720", "720.00", "\\mathbf{720}", "720^\\circ"), ("702", "7200")),
    ("integer", "-4", ("-4", "- 4", "-4.0", "(-4)"), ("4", "-40")),
    ("integer", "0", ("0", "0.0", "\\text{0}"), ("1", "O")),
    ("padded", "033", ("33", "033", "0033"), ("34", "303")),
    ("padded", "080", ("80", "080"), ("8", "800")),
    ("float_gold", "142.0", ("142", "142.0", "\\text{142}"), ("143", "14.2")),
    ("float_gold", "6.0", ("6", "6.0", "\\textbf{6}"), ("60", "7")),
    ("thousands", "15000", ("15000", "15,000", "15{,}000", "15\\,000", "15 000"), ("1500", "15,001")),
    ("thousands", "109890", ("109890", "109,890", "109{,}890"), ("109,89", "10989")),
    ("thousands", "1296", ("1296", "1,296"), ("1,269", "12.96")),
    ("decimal", ".35625", (".35625", "0.35625", "\\frac{57}{160}"), ("0.3562", "35.625")),
    ("decimal", "27.39", ("27.39", "27.390"), ("27.4", "2739")),
    ("decimal", "0.003", ("0.003", "3 \\times 10^{-3}", "\\frac{3}{1000}"), ("0.03", "0.0031")),
    ("fraction", "\\frac{1}{8}", ("\\frac{1}{8}", "\\dfrac{1}{8}", "1/8", "0.125", "\\frac{2}{16}", "\\tfrac18"),
     ("\\frac{1}{9}", "8", "\\frac{8}{1}")),
    ("fraction", "\\frac{16}{5}", ("\\frac{16}{5}", "3.2", "3\\frac{1}{5}", "\\frac {16} {5}"), ("\\frac{15}{5}", "3.25")),
    ("fraction", "-\\frac{3}{2}", ("-\\frac{3}{2}", "-1.5", "\\frac{-3}{2}", "-3/2"), ("\\frac{3}{2}", "-\\frac{2}{3}")),
    ("radical", "\\frac{\\sqrt{21}}{5}", ("\\frac{\\sqrt{21}}{5}", "\\frac{1}{5}\\sqrt{21}", "\\sqrt{21}/5"),
     ("\\frac{\\sqrt{20}}{5}", "\\sqrt{21}")),
    ("radical", "\\sqrt{51}", ("\\sqrt{51}", "\\sqrt {51}", "51^{1/2}"), ("\\sqrt{50}", "51")),
    ("radical", "\\frac{9 \\sqrt{3}}{20}", ("\\frac{9\\sqrt{3}}{20}", "\\frac{9}{20}\\sqrt{3}", "0.45\\sqrt{3}"),
     ("\\frac{9\\sqrt{2}}{20}",)),
    ("power", "2^{1009}", ("2^{1009}", "2^1009"), ("2^{1008}", "1009")),
    ("sci", "4.5e33", ("4.5e33", "4.5 \\times 10^{33}", "4.5\\cdot10^{33}"), ("4.5e32", "45")),
    ("sci", "5.3e-9", ("5.3e-9", "5.3 \\times 10^{-9}"), ("5.3e-8", "5.3")),
    ("tuple", "(6,31,-1)", ("(6,31,-1)", "(6, 31, -1)", "\\left(6,31,-1\\right)"), ("(6,31,1)", "(31,6,-1)")),
    ("set", "$(1,1), (3,2)$", ("(1,1), (3,2)", "(3,2), (1,1)", "(1,1) \\text{ and } (3,2)"), ("(1,1)", "(1,2), (3,2)")),
    ("set", "5,15", ("5,15", "5, 15", "15, 5", "\\{5, 15\\}", "5 \\text{ and } 15"), ("5", "5,16")),
    ("interval", "(0,4]", ("(0,4]", "(0, 4]", "0 < t \\le 4"), ("[0,4]", "(0,4)")),
    ("interval", "(-\\infty, 1]", ("(-\\infty, 1]", "(-\\infty,1]", "x \\le 1"), ("(-\\infty, 1)", "[1, \\infty)")),
    ("interval", "[-2, 3)", ("[-2, 3)", "[-2,3)"), ("(-2, 3)", "[-2, 3]")),
    ("interval", "(0,100]", ("(0,100]", "(0, 100]", "0 < x \\le 100"), ("[0,100]", "100", "(0,100)")),
    ("equation", "x=3", ("x=3", "3", "x = 3"), ("x=4", "y=3")),
    ("equation", "$M=\\frac{9}{32} \\sqrt{2}$", ("M=\\frac{9}{32}\\sqrt{2}", "\\frac{9\\sqrt{2}}{32}"),
     ("M=\\frac{9}{32}", "\\frac{9}{32}")),
    ("equation", "y = 2x + 1", ("y = 2x + 1", "y=1+2x", "2x+1"), ("y = 2x - 1", "y=x+1")),
    ("degrees", "$90^{\\circ}$", ("90^\\circ", "90", "90^{\\circ}", "90 \\text{ degrees}"), ("45^\\circ", "180")),
    ("degrees", "336^\\circ", ("336", "336^\\circ"), ("335^\\circ",)),
    ("percent", "10", ("10", "10\\%", "10 \\%", "10 percent"), ("0.1", "11\\%", "100")),
    ("percent", "25\\%", ("25\\%", "25", "0.25"), ("26\\%", "2.5\\%")),
    ("percent", "12.5", ("12.5", "12.5\\%"), ("12\\%",)),
    ("units", "12", ("12 \\text{ inches}", "12\\text{ cm}", "12 \\mbox{ m}", "\\$12", "12 dollars"), ("13 \\text{ cm}",)),
    ("units", "5", ("5 \\text{ units}", "5\\text{m}^2", "5 \\, \\text{kg}"), ("6 \\text{ kg}",)),
    ("text", "\\text{(C)}", ("\\text{(C)}", "(C)", "C", "\\textbf{(C)}"), ("\\text{(D)}", "D")),
    ("text", "\\text{Evelyn}", ("\\text{Evelyn}", "Evelyn", "\\text{evelyn}"), ("\\text{Bob}",)),
    ("symbolic", "\\frac{K-1}{L}", ("\\frac{K-1}{L}", "(K-1)/L", "\\frac{-1+K}{L}", "\\frac{k-1}{l}"),
     ("\\frac{K+1}{L}", "\\frac{L}{K-1}")),
    ("symbolic", "p - q", ("p-q", "-q+p", "-(q-p)"), ("q-p", "p+q")),
    ("symbolic", "x^2+2x+1", ("x^2+2x+1", "(x+1)^2", "1+2x+x^2"), ("x^2+1", "(x-1)^2")),
    ("symbolic", "X", ("X", "x"), ("Y",)),
    ("symbolic", "\\pi", ("\\pi", "\\pi ", "180^\\circ"), ("2\\pi", "3.14")),
    ("letter", "C", ("C", "(C)", "\\text{C}", "\\textbf{(C)}"), ("B", "D")),
)

#: Response templates: ``{a}`` is the final answer, ``{w}`` a wrong one written earlier, ``{t}`` filler text.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("boxed", "So the answer is $\\boxed{{{a}}}$."),
    ("boxed_plain", "Therefore \\boxed{{{a}}}"),
    ("boxed_newline", "{t}\n\n\\[\n\\boxed{{{a}}}\n\\]"),
    ("two_boxes_far", "First \\boxed{{{w}}}, but checking again the answer is \\boxed{{{a}}}."),
    ("two_boxes_then", "first \\boxed{{{w}}} then \\boxed{{{a}}}"),
    ("two_boxes_near", "\\boxed{{{w}}} or \\boxed{{{a}}}"),
    ("two_boxes_lines", "Guess: \\boxed{{{w}}}\n{t}\nFinal: \\boxed{{{a}}}"),
    ("two_boxes_comma", "\\boxed{{{w}}}, \\boxed{{{a}}}"),
    ("two_boxes_and", "The solutions are \\boxed{{{w}}} and \\boxed{{{a}}}."),
    ("same_box_twice", "\\boxed{{{a}}} so \\boxed{{{a}}}"),
    ("same_box_comma", "\\boxed{{{a}}}, \\boxed{{{a}}}"),
    ("box_and_plain", "\\boxed{{{w}}} is wrong; the answer is {a}"),
    ("box_then_wrong", "\\boxed{{{a}}}. Hmm, wait, maybe it is \\boxed{{{w}}}"),
    ("three_boxes", "\\boxed{{{w}}} ... no, \\boxed{{{w}}} ... finally \\boxed{{{a}}}"),
    ("final_answer_latex", "{t}\n**Final Answer:** ${a}$"),
    ("final_answer_is", "{t} The final answer is ${a}$. I hope it is correct."),
    ("answer_colon", "{t}\nAnswer: {a}"),
    ("inline_paren", "{t} so we get \\({a}\\)."),
    ("display_bracket", "{t}\n\\[ {a} \\]"),
    ("dollars_double", "{t}\n$$ {a} $$"),
    ("plain_end", "{t} The answer is {a}"),
    ("plain_sentence", "{t} so it is {a}."),
    ("think_boxed", "<think>\n{t} maybe \\boxed{{{w}}}\n</think>\nThe answer is \\boxed{{{a}}}."),
    ("think_unclosed", "<think>\n{t} so \\boxed{{{a}}} and I keep"),
    ("think_inside_only", "<think>\n{t} \\boxed{{{a}}}\n</think>\nI am not sure."),
    ("truncated_box", "{t} so the answer is \\boxed{{{a}"),
    ("truncated_nobox", "{t} Let us compute {w} + 1 and then"),
    ("text_answer", "{t} The answer is \\boxed{{\\text{{{a}}}}}."),
)
FILLER = (
    "Let me work through this step by step.",
    "We simplify the expression and check the edge cases: $x^2 - 1 = (x-1)(x+1)$.",
    "Using the formula $A = \\pi r^2$ with $r = 2$ gives $4\\pi$ for the area.",
    "The sum of the first $n$ integers is $\\frac{n(n+1)}{2}$, so for $n = 10$ we get 55.",
    "Note that 3 + 4 = 7.",
)


def generate(n: int, seed: int = 0) -> list[dict]:
    """``n`` cases ``{id, category, template, right, response, gold, think}``, deterministic in ``seed``.

    Every (gold, template) pair is used once before any repeats, with right and wrong answers alternating; a
    third of the cases have a prompt that ends in ``<think>\\n`` (the authors' split applies)."""
    rng = random.Random(seed)
    pairs = [(g, t) for g in GOLDS for t in TEMPLATES]
    rng.shuffle(pairs)
    cases = []
    i = 0
    while len(cases) < n:
        (category, gold, right, wrong), (template, text) = pairs[i % len(pairs)]
        is_right = i % 2 == 0
        answer = rng.choice(right if is_right else wrong)
        response = text.format(a=answer, w=rng.choice(wrong + ("0",)), t=rng.choice(FILLER))
        cases.append({"id": i, "category": category, "template": template, "right": is_right,
                      "response": response, "gold": gold, "think": i % 3 == 0})
        i += 1
    return cases


# --------------------------------------------------------------------------------------------------------
# Verdicts (here, and in the reference interpreter with math-verify 0.6.0)
# --------------------------------------------------------------------------------------------------------


def v3_response(response: str) -> str:
    """What the ``authors_v3`` reward grades for a case: the response as it is when it has a think block, else
    after a closed one (the reward is 0 for any response that never closes its think block)."""
    return response if "<think>" in response else "Let me think.\n</think>\n" + response


def verdicts(cases: list[dict]) -> list[dict]:
    """The three verdicts of every case, computed in this process with the suite's grading code (its workers'
    code, called directly: one process, no time limit but Math-Verify's own)."""
    from tgpo.grading.jobs import AuthorsJob, run_job
    from tgpo.grading.mathverify import authors_math_verify
    from tgpo.grading.text import _PROMPT_THINK_PREFIX, _THINK_CLOSE
    from tgpo.grading.verdicts import _authors_job

    out = []
    for case in cases:
        response, gold = case["response"], case["gold"]
        job = _authors_job(response, gold, case["think"])
        authors = job if isinstance(job, bool) else run_job(job)
        parts = (_PROMPT_THINK_PREFIX + v3_response(response)).split(_THINK_CLOSE)
        v3 = len(parts) >= 2 and run_job(AuthorsJob(parts[1], "", gold))
        out.append({"mv": authors_math_verify(response, gold), "authors": bool(authors), "authors_v3": bool(v3)})
    return out


@contextlib.contextmanager
def installed_math_verify():
    """Within: the authors' grade (and the oat-compatible grader) in this process call the installed math-verify
    as it is, without the compatibility layer (to measure what the layer changes, or to compare the oat grader
    with oat-llm's running on the same library)."""
    from tgpo.grading import mathverify, oat

    saved = mathverify.authors_parse, mathverify.authors_verify
    mathverify.authors_parse, mathverify.authors_verify = mathverify.parse, mathverify.verify
    mathverify._parse_gold_authors.cache_clear()
    oat._mv_parse_gold.cache_clear()
    try:
        yield
    finally:
        mathverify.authors_parse, mathverify.authors_verify = saved
        mathverify._parse_gold_authors.cache_clear()
        oat._mv_parse_gold.cache_clear()


def verdicts_without_layer(cases: list[dict]) -> list[dict]:
    """:func:`verdicts` with the installed math-verify as it is (no compatibility layer): what the layer changes."""
    with installed_math_verify():
        return verdicts(cases)


def _use_installed_math_verify_as_is() -> None:
    """In the reference interpreter: the suite's grading code calls the installed math-verify (0.6.0) directly,
    with its own default timeouts (0.6.0 cannot switch them off), and no compatibility layer."""
    import math_verify

    from tgpo.grading import mathverify, oat

    def parse(text, **kwargs):
        kwargs.pop("parsing_timeout", None)
        return math_verify.parse(text, **kwargs)

    def verify(gold, target):
        return bool(math_verify.verify(gold, target))

    mathverify.parse = mathverify.authors_parse = parse
    mathverify.verify = mathverify.authors_verify = verify
    oat._mv_parse_gold.cache_clear()
    mathverify._parse_gold_authors.cache_clear()


def reference_main() -> int:
    """``--reference-worker``: cases (JSON) on stdin, verdicts (JSON) and the library's version on stdout."""
    import importlib.metadata as md
    import logging

    logging.disable(logging.CRITICAL)
    try:
        import pylatexenc  # noqa: F401 - the oat-compatible grader needs it, as in the suite's environment
    except ImportError:
        print("the reference interpreter needs pylatexenc (pip install pylatexenc==2.11)", file=sys.stderr)
        return 2
    _use_installed_math_verify_as_is()
    cases = json.load(sys.stdin)
    json.dump({"versions": {p: md.version(p) for p in ("math-verify", "latex2sympy2_extended", "sympy")},
               "verdicts": verdicts(cases)}, sys.stdout)
    return 0


def reference_verdicts(python: str, cases: list[dict]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([python, "-m", "bench.mathverify_compat", "--reference-worker"], input=json.dumps(cases),
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if proc.returncode == 0:
        with contextlib.suppress(json.JSONDecodeError):
            return json.loads(proc.stdout)
    tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}, no verdicts on stdout"]
    print(f"{PROG}: error: the reference interpreter {python} failed: {tail[0]}", file=sys.stderr)
    raise SystemExit(2)


# --------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------


def write_outputs(out: Path, cases, ours, ref, versions, bare=None) -> dict:
    import importlib.metadata as md

    out.mkdir(parents=True, exist_ok=True)
    with (out / "mathverify_compat.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "category", "template", "right_answer", "think_prompt", "gold", "response",
                    *(f"{k}_{side}" for k in KINDS for side in ("060", "ours"))])
        for c, o, r in zip(cases, ours, ref):
            w.writerow([c["id"], c["category"], c["template"], int(c["right"]), int(c["think"]), c["gold"],
                        c["response"], *(int(v) for k in KINDS for v in (r[k], o[k]))])
    n = len(cases)
    agree = {k: sum(o[k] == r[k] for o, r in zip(ours, ref)) / n for k in KINDS}
    ours_versions = {p: md.version(p) for p in ("math-verify", "latex2sympy2_extended", "sympy")}
    names = {"mv": "the authors' Math-Verify call `verify(parse(\"$\" + gold + \"$\"), parse(response))`",
             "authors": "the authors' evaluation grade (Math-Verify or the oat-compatible grader)",
             "authors_v3": "the `authors_v3` training reward"}
    md_lines = ["## The authors' grade against math-verify 0.6.0 (`python -m bench.mathverify_compat`)", "",
                f"{n} generated cases ({len(GOLDS)} gold forms x {len(TEMPLATES)} response templates, right and wrong "
                "answers, a third with a prompt ending in `<think>`). Ours: "
                + ", ".join(f"{p} {v}" for p, v in ours_versions.items())
                + " with the compatibility layer of `tgpo/grading/mv_compat.py`. Reference: "
                + ", ".join(f"{p} {v}" for p, v in versions.items())
                + ", in a separate interpreter, with the same code of the suite around it. Every case with both "
                "verdicts: `mathverify_compat.csv`.", ""]
    for k in KINDS:
        met = "met" if agree[k] >= GOAL else "NOT met"
        line = f"- **{names[k]}**: {100 * agree[k]:.2f}% agreement ({met}: goal >= {100 * GOAL:.1f}%)"
        if bare is not None:
            without = sum(b[k] == r[k] for b, r in zip(bare, ref)) / n
            line += f"; without the compatibility layer (math-verify {ours_versions['math-verify']} as it is): {100 * without:.2f}%"
        md_lines.append(line + ".")
    md_lines += ["", "Every disagreement:", ""]
    differ = [(c, o, r) for c, o, r in zip(cases, ours, ref) if any(o[k] != r[k] for k in KINDS)]
    if not differ:
        md_lines.append("- none")
    for c, o, r in differ:
        kinds = ", ".join(f"{k}: 0.6.0 {r[k]}, ours {o[k]}" for k in KINDS if o[k] != r[k])
        md_lines.append(f"- case {c['id']} ({c['category']}, {c['template']}), gold `{c['gold']}`, "
                        f"response {json.dumps(c['response'])}: {kinds}")
    (out / "mathverify_compat.md").write_text("\n".join(md_lines) + "\n", encoding="utf-8")
    return agree


def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=positive_int, default=1500, help="number of generated cases (default 1500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-python",
                        help="an interpreter with math-verify 0.6.0 installed (default: $TGPO_MV060_PYTHON)")
    parser.add_argument("--output-dir", type=output_folder, default=OUT)
    parser.add_argument("--reference-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_worker:
        return reference_main()
    source, python = option_or_variable(args.reference_python, "--reference-python", "TGPO_MV060_PYTHON")
    problem = None
    if not python:
        problem = "give --reference-python (or set TGPO_MV060_PYTHON)"
    elif not (Path(python).is_file() and os.access(python, os.X_OK)):
        problem = f"{source} {python}: not an executable"
    if problem:
        print(f"{PROG}: error: {problem}: an interpreter with math-verify 0.6.0 is needed (see this module's "
              "docstring)", file=sys.stderr)
        return 2
    args.reference_python = python
    import logging

    logging.disable(logging.CRITICAL)  # Math-Verify warns on every call that its timeouts are off
    cases = generate(args.cases, args.seed)
    print(f"[mathverify_compat] {len(cases)} cases; grading with math-verify 0.6.0 in {args.reference_python}")
    ref = reference_verdicts(args.reference_python, cases)
    print("[mathverify_compat] grading here")
    ours = verdicts(cases)
    print("[mathverify_compat] grading here without the compatibility layer (for comparison)")
    bare = verdicts_without_layer(cases)
    agree = write_outputs(args.output_dir, cases, ours, ref["verdicts"], ref["versions"], bare)
    for k, v in agree.items():
        print(f"[mathverify_compat] agreement, {k}: {100 * v:.2f}%")
    print(f"wrote {args.output_dir / 'mathverify_compat.csv'} and {args.output_dir / 'mathverify_compat.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
