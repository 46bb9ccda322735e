"""A result's git stamp: code changes make it dirty; with ``ignore``, earlier results written into ``results/`` do not."""

import subprocess

import pytest

from tgpo.provenance import git_sha


@pytest.fixture
def checkout(tmp_path):
    git = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table1.md").write_text("old\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_a_rewritten_result_does_not_make_the_next_one_dirty(checkout):
    clean = git_sha(checkout, ignore=("results",))
    assert clean and not clean.endswith("-dirty")
    (checkout / "results" / "table1.md").write_text("new\n")
    assert git_sha(checkout, ignore=("results",)) == clean
    assert git_sha(checkout) == clean + "-dirty"  # without ignore it counts


def test_a_code_change_does(checkout):
    (checkout / "code.py").write_text("x = 2\n")
    (checkout / "results" / "table1.md").write_text("new\n")
    assert git_sha(checkout, ignore=("results",)).endswith("-dirty")


def test_outside_a_checkout_there_is_no_sha(tmp_path):
    assert git_sha(tmp_path) is None
