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


def _write_records(folder: str, n: int) -> None:
    from tgpo.provenance import write_run_record

    for i in range(n):
        write_run_record(folder, {"i": i})


def test_two_processes_writing_the_run_record_at_once_both_succeed(tmp_path):
    """The ranks of a launch build their trainers together; with one shared temporary name, one rank's rename found
    the file already renamed by the other (FileNotFoundError, the rank exits 2 and the launch fails)."""
    import multiprocessing

    import yaml

    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_records, args=(str(tmp_path), 300)) for _ in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0]
    assert yaml.safe_load((tmp_path / "tgpo_run.yaml").read_text()) == {"i": 299}
    assert [p.name for p in tmp_path.iterdir()] == ["tgpo_run.yaml"]  # no temporary file left behind
