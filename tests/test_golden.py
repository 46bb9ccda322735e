"""CI guard against any drift of the objectives' values (see tests/golden_values.py to regenerate)."""

import json

import pytest
from golden_values import GOLDEN_FILE, compute


def test_golden_file_covers_every_objective():
    assert set(json.loads(GOLDEN_FILE.read_text())) == set(compute())


@pytest.mark.parametrize("method", sorted(json.loads(GOLDEN_FILE.read_text())))
def test_objective_matches_golden_values(method):
    expected = json.loads(GOLDEN_FILE.read_text())[method]
    actual = compute()[method]
    assert actual["loss"] == pytest.approx(expected["loss"], rel=1e-9, abs=1e-12), method
    assert actual["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-9, abs=1e-12), method
