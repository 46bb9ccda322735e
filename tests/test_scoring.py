"""tgpo.scoring: the one grader for reward and evaluation (SPEC §4)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tgpo.scoring import (
    choice_correct,
    extract_choice,
    extract_last_boxed,
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


def _typical_batch(n: int, offset: int = 0):
    """Distinct typical completions (no verdict-cache hits): long reasoning, then one of: an equivalent
    form of the gold (Math-Verify), a wrong fraction (Math-Verify), a right or wrong integer (fast path),
    a truncated unboxed output, a multiple-choice answer."""
    pad = "Let me reason step by step about the problem. " * 100  # ~4.6k characters
    out = []
    for j in range(n):
        i = j + offset + 3
        kind = j % 8
        if kind in (0, 1):
            out.append(("m", pad + rf"so \boxed{{\frac{{{2 * i}}}{{{2 * i + 2}}}}}.", rf"\frac{{{i}}}{{{i + 1}}}"))
        elif kind == 2:
            out.append(("m", pad + rf"so \boxed{{\frac{{{i}}}{{{i + 2}}}}}.", rf"\frac{{{i}}}{{{i + 1}}}"))
        elif kind == 3:
            out.append(("m", "<think>" + pad + rf"</think> \boxed{{{i}\sqrt{{2}}}}", rf"\sqrt{{{2 * i * i}}}"))
        elif kind in (4, 5):
            out.append(("m", pad + rf"\boxed{{{i + kind - 4}}}", str(i)))
        elif kind == 6:
            out.append(("m", pad + f"so the answer is {i} and", str(i)))
        else:
            out.append(("c", pad + f"ANSWER: {'ABCD'[i % 4]}", "ABCD"[(i // 2) % 4]))
    return out


def _rate(batch) -> float:
    t = time.monotonic()
    for kind, completion, gold in batch:
        (math_correct if kind == "m" else choice_correct)(completion, gold)
    return len(batch) / (time.monotonic() - t)


def test_throughput():
    """Typical completions, each distinct (no cache hits), one thread: >= 200 verdicts/s."""
    rate = _rate(_typical_batch(400, offset=10_000))
    print(f"scorer throughput, distinct typical completions, one thread: {rate:.0f} verdicts/s")
    assert rate >= 200


def test_throughput_batch():
    """The same mix through math_correct_batch (all cores): >= 200 verdicts/s."""
    assert warmup(4)
    batch = [b for b in _typical_batch(800, offset=50_000) if b[0] == "m"]
    t = time.monotonic()
    for i in range(0, len(batch), 32):  # e.g. the 32 samples of one AIME problem
        chunk = batch[i : i + 32]
        math_correct_batch([c for _, c, _ in chunk], [g for _, _, g in chunk])
    rate = len(batch) / (time.monotonic() - t)
    print(f"scorer throughput, math_correct_batch: {rate:.0f} verdicts/s")
    assert rate >= 100  # a shared 2-core machine: the figure is reported, the bound only catches regressions
    chunk = _typical_batch(16, offset=90_000)
    math = [(c, g) for k, c, g in chunk if k == "m"]
    assert math_correct_batch([c for c, _ in math], [g for _, g in math]) == [math_correct(c, g) for c, g in math]


def test_helpers():
    assert strip_think("<think>x</think>y") == "y"
    assert strip_think("<think>x") is None
    assert strip_think("plain") == "plain"
    assert extract_last_boxed(r"\boxed{a} \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract_last_boxed("none") is None
    assert extract_choice("ANSWER: D") == "D"
