"""Two processes (``accelerate launch``, CPU, gloo) make the same first update as one process with the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
METHODS = ("tgpo", "rkl", "kdrl", "luffy")  # luffy: also the authors' padded-length sum (its default aggregation)


@pytest.fixture(scope="module")
def updates(tiny_plain_pair, tmp_path_factory):
    """``{method: (one-process result, two-process result)}``."""
    from mp_first_update import first_update

    student, teacher = map(str, tiny_plain_pair)
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
              str(HERE / "mp_first_update.py"), str(two), student, teacher, *METHODS]
    proc = subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for method in METHODS:  # the one-process references, while the two processes run
        first_update(str(one), student, teacher, method)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    return {m: (json.loads((one / f"{m}.json").read_text()), json.loads((two / f"{m}.json").read_text()))
            for m in METHODS}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_processes_make_the_one_process_update(updates, method):
    one, two = updates[method]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    biggest = max(max(abs(x) for x in v) for v in one["update"].values())
    assert biggest > 1e-3  # the update is not trivially zero
    for name, values in one["update"].items():
        torch.testing.assert_close(torch.tensor(two["update"][name]), torch.tensor(values), atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_processes_log_the_same_schedule_and_metrics(updates, method):
    (log_one,), (log_two,) = updates[method][0]["logs"], updates[method][1]["logs"]
    compared = [k for k, v in log_one.items() if isinstance(v, (int, float)) and k not in ("step_time", "epoch")]
    assert {"guidance_weight", "reward", "entropy", "grad_norm", "policy_loss"} <= set(compared)
    if method != "luffy":
        assert {"teacher/argmax_agreement", "teacher/sampled_logp"} <= set(compared)
    for key in compared:
        assert log_two[key] == pytest.approx(log_one[key], abs=1e-5, rel=1e-5), key
