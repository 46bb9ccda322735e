"""The paper-profile configs (repro/configs/paper/): inheritance, and every run's dry run without a GPU or a download."""

from pathlib import Path

import pytest
import yaml

from tgpo.cli import main
from tgpo.objectives import ADVANTAGE_EPS, METHODS
from tgpo.plan import PlanError, batch_arithmetic, build_plan
from tgpo.run_config import ConfigError, load_run_config, make_args, presets, read_yaml

PAPER = Path(__file__).resolve().parents[1] / "repro" / "configs" / "paper"
RUNS = sorted(PAPER.glob("*.yaml"))


def test_every_spec_run_has_a_config():
    from repro import table_config

    names = {p.stem for p in RUNS}
    for size, table in (("7b", "table1"), ("1.5b", "table2")):  # the paper's methods: its tables' rows
        methods = [row.method for row in table_config.load_table("paper", table).rows if row.method != table_config.BASE]
        assert len(methods) >= 7 and set(methods) <= set(METHODS)
        for method in methods:
            assert f"{size}_cross_{method}" in names
    for method in ("rkl", "kdrl", "tgpo"):
        assert f"1.5b_infamily_{method}" in names
    for schedule in ("constant", "two_thirds", "end", "none"):
        assert f"ablation_anneal_{schedule}" in names


def test_spec_hyperparameters_appear_once_in_base():
    text = (PAPER / "base" / "base.yaml").read_text()
    for key in ("learning_rate", "num_generations", "max_completion_length", "epsilon", "entropy_coef", "beta",
                "temperature", "kdrl_beta", "vllm_tensor_parallel_size"):
        assert sum(line.strip().startswith(f"{key}:") for line in text.splitlines()) == 1, key
    for run in RUNS:  # runs name student/teacher/method/output only; no hyperparameter is repeated
        trainer = (yaml.safe_load(run.read_text()).get("trainer") or {})
        assert set(trainer) <= {"method", "output_dir", "guidance_decay", "guidance_weight"}, run.name


@pytest.mark.parametrize("config", RUNS, ids=[p.stem for p in RUNS])
def test_paper_config_dry_run(config, capsys):
    assert main(["train", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "128 prompts x 8 rollouts per rollout step" in out
    assert "64 prompts x 8 rollouts" in out and "2 optimizer update(s) per rollout step" in out
    assert "= 300 rollout (training) steps" in out
    assert "nothing downloaded" in out and "built-in table" in out
    plan = build_plan(load_run_config(config, check_paths=False))
    assert plan["processes"] == 8 and plan["vllm"]["tensor_parallel_size"] == 2
    h = plan["hyper"]
    assert h["learning_rate"] == 1e-6 and h["temperature"] == 1.0 and h["max_completion_length"] == 8192
    assert h["entropy_coef"] == 0.001 and h["beta"] == 0.0
    assert h.get("epsilon", 0.2) == 0.2 and ("epsilon" in h) == ("clip_eps" in METHODS[plan["method"]].reads)
    # the authors' optimiser (docs/method.md §3): constant lr, AdamW weight decay 0.01, TRL's betas/eps/clipping
    assert h["lr_scheduler_type"] == "constant" and h["warmup_steps"] == 0 and h["weight_decay"] == 0.01
    assert (h["adam_beta1"], h["adam_beta2"], h["adam_epsilon"], h["max_grad_norm"]) == (0.9, 0.999, 1e-8, 1.0)
    assert "lr_scheduler_type constant" in out and "entropy_micro_batches 1" in out
    assert ("kdrl_beta" in h) == plan["method"].startswith("kdrl")  # the method's own loss fields, from the registry
    if METHODS[plan["method"]].scheduled:
        s = plan["schedule"]
        expected = {"constant": None, "end": 301, "none": 1}.get(config.stem.rsplit("_", 1)[-1], 201)
        assert s["zero_at"] == expected
        l0 = 2e-2 if plan["method"] == "tgpo_adv" else 2e-3
        if expected == 201:
            assert s["at"][1] == l0 and s["at"][201] == 0 and s["at"][200] == pytest.approx(l0 / 200)
    if plan["teacher"] is not None and "cross" in config.stem:
        assert plan["tokenizers"]["needs_align"] is True and plan["teacher_served"]
    if "infamily" in config.stem:
        assert plan["tokenizers"]["needs_align"] is False and not plan["teacher_served"]


def test_inheritance_deep_merge_relative_paths_and_cycles(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text(yaml.safe_dump(
        {"model": "a/b", "dataset": {"path": "x", "limit": 5}, "trainer": {"learning_rate": 1.0, "num_generations": 4}}))
    (tmp_path / "sub" / "mid.yaml").write_text("base: base.yaml\ntrainer: {learning_rate: 2.0}\n")
    (tmp_path / "run.yaml").write_text("inherit: [sub/mid.yaml]\ndataset: {limit: 7}\ntrainer: {method: grpo}\n")
    cfg = read_yaml(tmp_path / "run.yaml", ["trainer.learning_rate=3.0"])
    assert cfg["dataset"] == {"path": "x", "limit": 7}
    assert cfg["trainer"] == {"learning_rate": 3.0, "num_generations": 4, "method": "grpo"}
    assert "base" not in cfg and "inherit" not in cfg
    (tmp_path / "a.yaml").write_text("base: b.yaml\nmodel: a/b\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="inheritance cycle"):
        read_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\nmodel: a/b\n")
    with pytest.raises(ConfigError, match="missing.yaml.*does not exist.*inherited by"):
        read_yaml(tmp_path / "c.yaml")


def test_inconsistent_batch_config_fails_clearly(capsys):
    config = PAPER / "7b_cross_tgpo.yaml"
    # not a multiple of gradient_accumulation_steps (8): accepted as TRL accepts it, updates straddle rollout batches
    assert main(["train", "--config", str(config), "--dry-run", "--set", "trainer.steps_per_generation=12"]) == 0
    assert "1.5 optimizer update(s) per rollout step" in capsys.readouterr().out
    assert main(["train", "--config", str(config), "--dry-run", "--set", "trainer.per_device_train_batch_size=3",
                 "--set", "trainer.steps_per_generation=null", "--set", "trainer.generation_batch_size=1000"]) == 2
    # TRL's own check, on the planned 8 processes: the global batch is 3 x 8 = 24
    assert "generation_batch_size (1000) must be divisible by the global batch size (24)" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--dry-run", "--set", "trainer.max_steps=301"]) == 2
    assert "not a multiple of the 2 updates per rollout batch" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"generation_batch_size \(3\) must be divisible by num_generations \(8\)"):
        make_args({"output_dir": "/tmp/tgpo-plan", "per_device_train_batch_size": 3, "num_generations": 8}, probe=True)
    with pytest.raises(PlanError, match="must divide"):
        build_plan(load_run_config(config, ["launch.num_processes=7", "launch.accelerate_config=null"], check_paths=False))


def test_the_plan_takes_the_batch_arithmetic_from_trl_on_the_planned_processes():
    trainer = {"output_dir": "/tmp/tgpo-plan", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,
               "num_generations": 8, "max_steps": 6}
    for processes in (1, 2, 8):
        args = make_args(trainer, probe=True, processes=processes)
        batch = batch_arithmetic(args)
        # TRL: steps_per_generation defaults to gradient_accumulation_steps; the generation batch spans all processes
        assert batch["processes"] == args.world_size == processes
        assert batch["generation_batch_size"] == args.generation_batch_size == 4 * processes * 2
        assert batch["prompts_per_rollout_step"] == processes and batch["rollout_steps"] == 6
    with pytest.raises(PlanError, match="max_steps \\(5 optimizer updates\\) is not a multiple of the 2 updates"):
        batch_arithmetic(make_args({**trainer, "steps_per_generation": 4, "max_steps": 5}, probe=True, processes=2))


def test_dry_run_on_local_folders_checks_tokenizers(tiny_pair, tmp_path, capsys):
    cfg = {"model": str(tiny_pair[0]), "teacher_model": str(tiny_pair[1]),
           "trainer": {"method": "tgpo", "per_device_train_batch_size": 8, "num_generations": 4, "max_steps": 3}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "local folder" in out and "checked on the tokenizer files" in out and "no alignment needed" in out
    assert "2 prompts x 4 rollouts per rollout step" in out


@pytest.mark.parametrize("preset", ["controlled", "authors_final", "authors_early"])
def test_every_preset_dry_runs_and_says_what_each_method_uses(preset, capsys):
    for name in ("7b_cross_grpo", "7b_cross_luffy", "7b_cross_tgpo", "7b_cross_tgpo_adv"):
        assert main(["train", "--config", str(PAPER / f"{name}.yaml"), "--dry-run", "--preset", preset]) == 0
        out = capsys.readouterr().out
        assert f"preset: {preset}" in out
        for method in ("grpo", "luffy", "rkl", "kdrl", "tgpo", "tgpo_adv"):
            assert any(line.strip().startswith(method + " ") for line in out.splitlines()), method
    plan = build_plan(load_run_config(PAPER / "7b_cross_grpo.yaml", preset=preset, check_paths=False))
    expected = {"controlled": ("group", "token mean"), "authors_early": ("group", "token mean"),
                "authors_final": ("no std", "loss_remove_token_mean")}[preset]
    assert f"std + {ADVANTAGE_EPS:g}" in plan["preset"]["run"]["advantage"] if expected[0] == "group" else \
        "no std" in plan["preset"]["run"]["advantage"]
    assert expected[1] in plan["preset"]["run"]["aggregation"]


def test_presets_change_only_normalisation_and_aggregation():
    table = presets()
    assert set(table) == {"controlled", "authors_final", "authors_early"}
    for preset, methods in table.items():
        for method, settings in methods.items():
            if method != "_about":
                assert set(settings) <= {"scale_rewards", "loss_type", "dr_grpo_row_mean", "entropy_coef"}, (preset, method)
                assert settings["entropy_coef"] == 0.001, (preset, method)  # the paper's bonus, the same everywhere
    controlled = {m: s for m, s in table["controlled"].items() if m != "_about"}
    assert len({tuple(sorted(s.items())) for s in controlled.values()}) == 1  # the same for every method
    final = table["authors_final"]
    assert final["grpo"] == {"scale_rewards": "none", "loss_type": "dr_grpo", "dr_grpo_row_mean": False,
                             "entropy_coef": 0.001}
    assert final["tgpo"]["scale_rewards"] == final["tgpo_adv"]["scale_rewards"] == "group"
    assert final["kdrl"] == final["rkl"] == {"scale_rewards": "none", "loss_type": "dapo", "entropy_coef": 0.001}
    # the final launcher runs LUFFY with loss_remove_token_mean=False: a token mean (GRPO has the padded-length sum)
    assert final["luffy"] == {"scale_rewards": "none", "loss_type": "dapo", "entropy_coef": 0.001}
    assert table["authors_early"]["luffy"]["loss_type"] == "dr_grpo"
