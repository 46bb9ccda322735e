"""tgpo.grading: the one grader for reward and evaluation, strict and the authors' rule (docs/method.md §4).

Speed is measured by `python -m bench.grader`, not asserted here (a shared machine makes a rate flaky)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tgpo.grading import (
    SMALL_GOLD_REL_TOL,
    Verdicts,
    authors_reward_v3_batch,
    choice_correct,
    extract_choice,
    extract_last_boxed,
    grade_batch,
    math_correct,
    math_correct_batch,
    strip_think,
    warmup,
)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    assert warmup()


MATH_CASES = [
    # (completion, gold, expected, why)
    (r"The answer is \boxed{\frac{14}{3}}.", r"\frac{14}{3}", True, "identical"),
    (r"So \boxed{\dfrac{14}{3}}", r"\frac{14}{3}", True, "dfrac"),
    (r"\boxed{4\frac{2}{3}}", r"\frac{14}{3}", True, "mixed number"),
    (r"\boxed{0.5}", r"\frac{1}{2}", True, "decimal vs fraction"),
    (r"\boxed{\frac12}", "0.5", True, "short fraction"),
    (r"\boxed{25}", "025", True, "AIME zero padding"),
    (r"\boxed{142}", "142.0", True, "AMC float gold"),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True, "radicals"),
    (r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)", True, "tuple with left/right"),
    (r"\boxed{x = 5}", "5", True, "assignment"),
    (r"\boxed{336}", r"336^\circ", True, "degrees"),
    (r"\boxed{69, 84}", "$69$,$84$", True, "OlympiadBench dollar-packed list"),
    (r"\boxed{\frac{1}{2n+2}}", r"$\frac{1}{2 n+2}$", True, "dollar-wrapped gold"),
    (r"\boxed{4.5\times 10^{33}}", "4.5e33", True, "scientific notation"),
    (r"\boxed{p-q}", "p - q", True, "symbolic"),
    (r"\boxed{-\frac{6}{4}}", "-1.5", True, "negative fraction fast path"),
    (r"\boxed{3/4}", r"\frac{3}{4}", True, "slash fraction"),
    (r"\boxed{\frac{3}{5}}", r"\frac{3}{4}", False, "different fractions"),
    (r"\boxed{\frac{1}{3}}", "0.333333", True, "rounded decimal (Math-Verify)"),
    (r"\boxed{7}", "8", False, "wrong integer"),
    (r"\boxed{0.51}", "0.5", False, "wrong decimal"),
    (r"\boxed{\frac{13}{3}}", r"\frac{14}{3}", False, "wrong fraction"),
    (r"\boxed{q-p}", "p - q", False, "wrong sign"),
    # think blocks
    (r"<think>maybe \boxed{3}</think> Final: \boxed{4}", "4", True, "answer after think"),
    (r"<think>clearly \boxed{4}</think> Final: \boxed{3}", "4", False, "box inside think is dropped"),
    (r"<think>\boxed{4} and I keep going", "4", False, "think never closes"),
    (r"<think>a</think><think>b \boxed{4}</think> so \boxed{5}", "5", True, "last close tag wins"),
    (r"reasoning</think> \boxed{4}", "4", True, "close tag without open (template opened it)"),
    # several boxes / truncation / no box
    (r"first \boxed{3}, then \boxed{4}", "4", True, "last box wins"),
    (r"first \boxed{4}, then \boxed{3}", "4", False, "last box wins (wrong)"),
    (r"\boxed{4} then \boxed{3", "4", False, "truncated last box"),
    (r"The answer is 4", "4", False, "no box: no unanchored fallback"),
    (r"... so 2+2 = 4 and the", "4", False, "truncated, stray number"),
    (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{\sqrt{2}}{2}", True, "nested braces"),
    (r"\fbox{4}", "4", True, "fbox"),
    (r"\boxed 4", "4", True, "boxed with space"),
    (r"\boxed{}", "4", False, "empty box"),
    (r"\boxed{4}", "", False, "empty gold"),
    (r"\boxed{\text{no idea}}", "4", False, "text answer"),
]


@pytest.mark.parametrize("completion,gold,expected,why", MATH_CASES, ids=[c[3] for c in MATH_CASES])
def test_math_table(completion, gold, expected, why):
    assert math_correct(completion, gold) is expected, why


CHOICE_CASES = [
    ("Reasoning.\nANSWER: C", "C", True, "answer line"),
    ("ANSWER: $C$", "C", True, "answer line with dollars"),
    ("**Answer:** (B)", "B", True, "markdown answer"),
    (r"So the result is \boxed{D}.", "D", True, "boxed letter"),
    (r"\boxed{\text{(J)}}", "J", True, "boxed text letter, ten options"),
    (r"\boxed{C) Planetary days will become shorter.}", "C", True, "boxed letter with option text"),
    ("Therefore, the answer is (A).", "A", True, "answer is (X)"),
    ("The answer is B", "B", True, "answer is X"),
    ("ANSWER: A\n...on reflection ANSWER: C", "C", True, "last one wins"),
    (r"ANSWER: C then \boxed{A}", "A", True, "last one wins across forms"),
    ("<think>ANSWER: C</think>ANSWER: B", "C", False, "think dropped"),
    ("<think>ANSWER: C", "C", False, "think never closes"),
    ("ANSWER: B", "C", False, "wrong letter"),
    ("The answer is Beta decay", "B", False, "word starting with a letter"),
    ("I pick C", "C", False, "no anchor"),
    ("ANSWER: C", "(c)", True, "gold normalised"),
    ("ANSWER: K", "K", False, "outside A-J"),
]


@pytest.mark.parametrize("completion,gold,expected,why", CHOICE_CASES, ids=[c[3] for c in CHOICE_CASES])
def test_choice_table(completion, gold, expected, why):
    assert choice_correct(completion, gold) is expected, why


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["\\boxed{4}"], {"x": 1}, float("nan")])
def test_bad_input_never_raises(bad):
    assert math_correct(bad, "4") is False
    assert math_correct("\\boxed{4}", bad if not isinstance(bad, int) else object()) is False
    assert choice_correct(bad, "A") is False
    assert choice_correct("ANSWER: A", bad) is False


def test_numeric_gold_accepted():
    assert math_correct("\\boxed{4}", 4) is True


ADVERSARIAL = [
    r"\boxed{9^{9^{9^{9}}}}",
    r"\boxed{9^{9^{9}}}",
    r"\boxed{10^{10^{10}}}",
    r"\boxed{100000!}",
    r"\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    r"\boxed{" + "x+" * 5000 + "1}",
    "\\boxed{" + "{" * 20000,
    "\\boxed{\\frac{\\frac{\\frac{1}{2}}{3}}{" * 200,
    "x" * 500_000,
]


@pytest.mark.parametrize("completion", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_bounded(completion):
    t = time.monotonic()
    assert math_correct(completion, "1") is False
    assert time.monotonic() - t < 5.0


def test_worker_recovers_after_overrun():
    # an expensive but non-pre-filtered input overruns, the worker is replaced, the next verdict is right
    t = time.monotonic()
    math_correct(r"\boxed{10^{10^{10}}}", "7", timeout=0.5)
    assert time.monotonic() - t < 5.0
    t = time.monotonic()
    assert math_correct(r"\boxed{\frac{2}{4}}", "0.5") is True
    assert time.monotonic() - t < 5.0


def test_threads():
    cases = [(r"\boxed{\frac{2}{4}}", "0.5", True), (r"\boxed{\sqrt{2}}", "1.5", False)] * 8
    cases.append((r"\boxed{9^{9^{9}}}", "1", False))
    assert warmup(4)
    t = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda c: math_correct(c[0], c[1]), cases))
    assert got == [c[2] for c in cases]
    assert time.monotonic() - t < 15.0  # 17 verdicts, one of them a 3 s overrun, on a shared 2-core machine

    assert warmup(2)
    out = {}

    def worker():
        t0 = time.monotonic()
        out["v"] = math_correct(r"\boxed{9^{9^{9^{9}}}}", "1")
        out["v2"] = math_correct(r"\boxed{\frac{6}{4}}", "1.5")
        out["t"] = time.monotonic() - t0

    th = threading.Thread(target=worker)
    th.start()
    th.join(15)
    assert out == {"v": False, "v2": True, "t": out["t"]} and out["t"] < 5.0


def test_batch_matches_single_verdicts():
    pad = "Let me reason step by step about the problem. " * 50
    cases = [
        (pad + r"so \boxed{\frac{4}{6}}.", r"\frac{2}{3}"),
        (pad + r"so \boxed{\frac{3}{5}}.", r"\frac{2}{3}"),
        ("<think>" + pad + r"</think> \boxed{3\sqrt{2}}", r"\sqrt{18}"),
        (pad + r"\boxed{17}", "17"),
        (pad + r"\boxed{18}", "17"),
        (pad + "so the answer is 17 and", "17"),
    ]
    comps, golds = [c for c, _ in cases], [g for _, g in cases]
    for protocol in ("strict", "authors"):
        singles = [math_correct(c, g, protocol=protocol) for c, g in cases]
        assert math_correct_batch(comps, golds, protocol=protocol) == singles
    both = grade_batch(comps, golds)
    assert [v.strict for v in both] == [True, False, True, True, False, False]
    assert [v.authors for v in both] == [True, False, True, True, False, True]  # the bare 17 counts for them
    assert math_correct_batch(comps[:2], r"\frac{2}{3}") == [True, False]  # one gold for all
    with pytest.raises(ValueError):
        math_correct_batch(comps, golds[:2])


def test_helpers():
    assert strip_think("<think>x</think>y") == "y"
    assert strip_think("<think>x") is None
    assert strip_think("plain") == "plain"
    assert extract_last_boxed(r"\boxed{a} \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract_last_boxed("none") is None
    assert extract_choice("ANSWER: D") == "D"


# ------------------------------------------------------------------------------------------------------
# Gold normalisation and tiny golds (strict)
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [r"\text{142}", r"\textbf{142}", r"142\%", "142", "142.0"])
def test_amc_float_gold_accepts_the_forms_an_integer_gold_does(answer):
    assert math_correct(rf"so \boxed{{{answer}}}", "142.0") is True
    assert math_correct(rf"so \boxed{{{answer}}}", "142") is True
    assert math_correct(rf"so \boxed{{{answer}}}", "143.0") is False


TINY = [
    (r"\boxed{4.6\times 10^{-24}}", "4.6e-24", True),
    (r"\boxed{4.6 \cdot 10^{-24}}", "4.6e-24", True),
    (r"\boxed{4.6e-24}", "4.6e-24", True),
    (r"\boxed{-4.6e-24}", "4.6e-24", False),  # wrong sign
    (r"\boxed{4.6e-21}", "4.6e-24", False),  # wrong exponent
    (r"\boxed{10^{-30}}", "4.6e-24", False),
    (r"\boxed{.0000673}", ".0000672", False),  # both round to .000067 at six decimals
    (r"\boxed{0.0000672}", ".0000672", True),
    (r"\boxed{6.72\times10^{-5}}", ".0000672", True),
    (r"\boxed{x = 6.72\times10^{-5}}", ".0000672", True),
    (r"\boxed{0.00067}", "0.00068", False),
]


@pytest.mark.parametrize("completion,gold,expected", TINY, ids=[f"{c} vs {g}" for c, g, _ in TINY])
def test_tiny_golds_compared_relatively(completion, gold, expected):
    assert math_correct(completion, gold) is expected


def test_tiny_gold_tolerance_is_the_stated_one():
    gold = 6.72e-5
    inside = gold * (1 + SMALL_GOLD_REL_TOL / 2)
    outside = gold * (1 + 5 * SMALL_GOLD_REL_TOL)
    assert math_correct(rf"\boxed{{{inside:.12f}}}", "0.0000672") is True
    assert math_correct(rf"\boxed{{{outside:.12f}}}", "0.0000672") is False
    assert math_correct(rf"\boxed{{{outside:.10e}}}", "6.72e-5") is False  # also through Math-Verify


# ------------------------------------------------------------------------------------------------------
# The authors' rule
# ------------------------------------------------------------------------------------------------------

AUTHORS = [
    # (completion, gold, prompt_ends_in_think, strict, authors, why)
    (r"the answer is $\frac12$", "0.5", False, False, True, "no box: Math-Verify finds the last expression"),
    ("**Final Answer:** 204", "204", False, False, True, "plain number, no box"),
    (r"<think>so \boxed{204} and I keep going", "204", False, False, True, "unclosed think, whole response graded"),
    (r"<think>\boxed{3}</think> so \boxed{4}", "4", False, True, True, "closed think, both agree"),
    (r"<think>clearly \boxed{4}</think> so \boxed{3}", "4", False, False, False, "last box is wrong for both"),
    (r"reasoning</think> \boxed{5}", "5", True, True, True, "prompt opened the think block"),
    (r"reasoning \boxed{5}", "5", True, False, True, "never closed: Math-Verify no, oat on the unsplit text yes"),
    (r"a</think> \boxed{4} </think> \boxed{5}", "4", True, False, True, "their split keeps the first segment"),
    (r"so \boxed{7}", "8", False, False, False, "wrong"),
    (r"\boxed{\text{142}}", "142.0", False, True, True, "AMC float gold"),
]


@pytest.mark.parametrize(
    "completion,gold,think,strict,authors,why", AUTHORS, ids=[c[5] for c in AUTHORS]
)
def test_authors_rule(completion, gold, think, strict, authors, why):
    assert math_correct(completion, gold, prompt_ends_in_think=think) is strict, why
    assert math_correct(completion, gold, protocol="authors", prompt_ends_in_think=think) is authors, why
    assert grade_batch([completion], gold, prompt_ends_in_think=think) == [Verdicts(strict, authors)]


CHOICE_AUTHORS = [
    ("Reasoning.\nANSWER: C", "C", True, False),  # their pipeline needs a box (or LaTeX) around the letter
    (r"So the result is \boxed{C}.", "C", True, True),
    (r"So the result is \boxed{B}.", "C", False, False),
    ("<think>ANSWER: C", "C", False, False),
]


@pytest.mark.parametrize("completion,gold,strict,authors", CHOICE_AUTHORS)
def test_authors_rule_on_choices(completion, gold, strict, authors):
    assert choice_correct(completion, gold) is strict
    assert choice_correct(completion, gold, protocol="authors") is authors
    assert grade_batch([completion], [gold], kind="choice") == [Verdicts(strict, authors)]


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError):
        math_correct(r"\boxed{4}", "4", protocol="lenient")
    with pytest.raises(ValueError):
        grade_batch([r"\boxed{4}"], "4", kind="essay")


def test_choice_correct_is_linear_in_unclosed_boxes():
    # the last-box search used to rescan to the end for every box: 8,000 unclosed boxes took 13.5 s
    t = time.monotonic()
    assert choice_correct("\\boxed{" * 40_000 + " ANSWER: C", "C") is True
    assert choice_correct("ANSWER: C " + "\\boxed{" * 40_000, "C") is True
    assert time.monotonic() - t < 2.0


@pytest.mark.parametrize("completion", ADVERSARIAL[:4] + ["\\boxed{" * 20000, "x" * 500_000], ids=range(6))
def test_adversarial_bounded_authors(completion):
    t = time.monotonic()
    assert math_correct(completion, "1", protocol="authors") is False
    assert time.monotonic() - t < 5.0


def test_deprecated_paths_and_names_still_answer():
    """tgpo.scoring, tgpo.oat_grader.boxed_reward and tgpo.rewards.boxed_reward stay for one release, warning."""
    import importlib
    import sys

    from tgpo import rewards
    from tgpo.grading.oat import oat_boxed_correct

    sys.modules.pop("tgpo.scoring", None)
    with pytest.warns(DeprecationWarning):
        scoring = importlib.import_module("tgpo.scoring")
    assert scoring.math_correct is math_correct and scoring.grade_batch is grade_batch
    from tgpo import oat_grader

    with pytest.warns(DeprecationWarning):
        assert oat_grader.boxed_reward(r"so \boxed{\frac{1}{2}}", "0.5") is oat_boxed_correct(r"\boxed{0.5}", "1/2")
    with pytest.warns(DeprecationWarning):
        assert rewards.boxed_reward([r"\boxed{3}", r"\boxed{4}"], answer=["3", "3"]) == [1.0, 0.0]
    assert rewards.REWARD_FUNCTIONS["boxed"] is rewards.strict_boxed_reward


# ------------------------------------------------------------------------------------------------------
# The authors' grade reproduces math-verify 0.6.0 (their pin); the strict grade keeps the installed library
# ------------------------------------------------------------------------------------------------------

MV060 = [
    # (text after </think>, gold, 0.6.0's verdict, why)
    (r"first \boxed{3} then \boxed{5}", "5", True, "several boxes: 0.6.0 takes the last (0.9: {3, 5})"),
    (r"\boxed{3} \boxed{5}", "5", True, "boxes close together: still the last"),
    (r"\boxed{5}, \boxed{5}", "5", True, "a repeated box joined by a comma"),
    (r"\boxed{0}, \boxed{720}", "720", True, "0,720 is 720 with a thousands comma (0.9: 0.720)"),
    (r"\boxed{(0,720)}", "720", False, "but (0,720) stays an interval"),
    (r"\boxed{0} and \boxed{336^\circ}", "336", False, "and 0,336 degrees a list of two"),
    (r"\boxed{3} and \boxed{5}", "3, 5", True, "boxes joined by 'and' are one answer"),
    (r"\boxed{10\%}", "10", False, "10% is 1/10, not 10 (0.9 accepts)"),
    (r"\boxed{25}", r"25\%", False, "25 is not 25% (0.9 accepts)"),
    (r"\boxed{25\%}", r"25\%", True, "25% is 25%"),
    (r"\boxed{\frac{k-1}{l}}", r"\frac{K-1}{L}", False, "letter case kept (0.9 lowercases)"),
    (r"\boxed{\text{evelyn}}", r"\text{Evelyn}", False, "names compared with case (0.9 without)"),
    (r"\boxed{\text{0}}", "0", True, "the text of the answer equals the gold's"),
]


@pytest.mark.parametrize("answer,gold,expected,why", MV060, ids=[c[3] for c in MV060])
def test_authors_grade_reproduces_math_verify_060(answer, gold, expected, why):
    """The authors' Math-Verify half as math-verify 0.6.0 decides (measured against the real 0.6.0 by
    ``python -m bench.mathverify_compat``): the ``authors_v3`` reward, which has no oat half, shows it."""
    assert authors_reward_v3_batch([f"reasoning</think> {answer}"], gold) == [expected], why


def test_the_strict_grade_keeps_the_installed_math_verify():
    """The compatibility layer acts only inside the authors' grade: the strict grade in the same workers still
    reads a percentage as its number and the last box as the answer."""
    authors_reward_v3_batch([r"r</think> \boxed{10\%}", r"r</think> first \boxed{3} then \boxed{5}"], ["10", "5"])
    assert math_correct_batch([r"\boxed{10\%}", r"first \boxed{3} then \boxed{5}", r"\boxed{\frac{k-1}{l}}"],
                              ["10", "5", r"\frac{K-1}{L}"]) == [True, True, True]


def test_last_box_as_060_reads_it():
    from tgpo.grading.mv_compat import last_boxed_060

    assert last_boxed_060(r"first \boxed{3} then \boxed{5}") == "5"
    assert last_boxed_060(r"\boxed{1}, \boxed{2} or \boxed{3}") == "1,2,3"
    assert last_boxed_060(r"\boxed{1} \fbox{2}") == "2"
    assert last_boxed_060(r"so \boxed{3} and \boxed{4") == "{4"  # an unclosed last box: the rest of the text
    assert last_boxed_060("no box") == "no box"


def test_grader_versions_name_both_grades():
    import importlib.metadata as md

    from tgpo.grading import grader_versions

    v = grader_versions()
    assert v["math-verify"] == md.version("math-verify") and v["authors_math_verify"] == "0.6.0"
    assert {"latex2sympy2_extended", "sympy"} <= set(v)
