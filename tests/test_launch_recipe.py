"""The one-node launch recipe (repro/launch/train_paper.sh) runs, as a GPU user runs it, in its CPU form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_rehearsal_of_the_one_node_recipe(tmp_path):
    from tgpo.lab import rl_dataset

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("prompt", "answer")}) + "\n" for r in rl_dataset(n=16)))
    out = tmp_path / "run"
    env = {**os.environ, "TGPO_LAUNCH_CPU": "2", "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", "repro/launch/train_paper.sh", "repro/configs/launch/cpu_rehearsal.yaml",
         "--set", f"dataset.path={data}", "--output-dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "2 training processes" in proc.stdout  # the dry run's plan, with the device settings overridden
    assert "x processes 2 x gradient_accumulation_steps 1 = 16 completions per optimizer update" in proc.stdout
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logs = [h for h in state["log_history"] if "loss" in h]
    assert [h["guidance_weight"] for h in logs] == pytest.approx([0.05, 0.03])
    assert all("teacher/argmax_agreement" in h for h in logs)
    assert (out / "checkpoint-2" / "tgpo_checkpoint.json").exists() and (out / "model.safetensors").exists()
    record = yaml.safe_load((out / "tgpo_run.yaml").read_text())  # one record, by the main process
    assert record["method"] == "tgpo" and [p.name for p in out.glob(".tgpo_run.yaml*")] == []
