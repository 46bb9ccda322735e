"""The method registry as the one home of a method: a new method is one function and one ``register`` call; the
loss hyperparameters, presets, config checks and deprecated names all read from it (docs/method.md §2)."""

import dataclasses
import json
import warnings

import pytest
import torch
import yaml
from datasets import Dataset

from tgpo import TGPOConfig, TGPOTrainer
from tgpo import objectives as obj
from tgpo.cli import main
from tgpo.config import field_bounds
from tgpo.run_config import (
    ConfigError,
    _preset_file,
    load_run_config,
    make_args,
    preset_names,
    preset_settings,
    presets,
)


@pytest.fixture
def registry():
    """Restores :data:`tgpo.objectives.METHODS` after a test that registers a method."""
    before = dict(obj.METHODS)
    yield obj.METHODS
    obj.METHODS.clear()
    obj.METHODS.update(before)


def half_grpo(x: obj.LossInputs, cfg: obj.LossConfig) -> obj.LossOutputs:
    """A new method for the test: half of GRPO's clipped surrogate, aggregated as configured."""
    per_token, _ = obj.surrogate(x.logp, x.old_logp, x.advantages, x.mask, cfg.clip_eps, cfg.clip_eps_high, cfg.delta)
    loss = 0.5 * obj.aggregate(per_token, x.mask, x.aggregation)
    return obj.LossOutputs(loss, {"pg_loss": loss.detach()})


def _rows(n=4):
    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"{i}+{i}"}], "answer": str(2 * i)}
                              for i in range(n)])


def parity_reward(completions, **kwargs):
    return [float(len(c[0]["content"]) % 2) for c in completions]


def test_a_new_method_is_one_function_and_one_register_call(registry, tiny_pair, tmp_path, capsys):
    obj.register("half_grpo", half_grpo, label="Half GRPO")  # the only change: no other file is edited

    # it trains a few steps on tiny models
    args = TGPOConfig(output_dir=str(tmp_path / "out"), method="half_grpo", use_cpu=True, bf16=False,
                      per_device_train_batch_size=8, num_generations=4, max_completion_length=8, max_steps=2,
                      logging_steps=1, learning_rate=1e-3, report_to="none", save_strategy="no", seed=0)
    assert args.loss_type == "dapo" and not args.needs_teacher  # the registry's defaults
    trainer = TGPOTrainer(str(tiny_pair[0]), reward_funcs=[parity_reward], args=args, train_dataset=_rows())
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())

    # it plans with the dry run, under every preset (the preset's `all` settings apply to it)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_pair[0]), "trainer": {
        "method": "half_grpo", "per_device_train_batch_size": 8, "num_generations": 4, "max_steps": 2}}))
    for preset in preset_names():
        assert main(["train", "--config", str(config), "--dry-run", "--preset", preset]) == 0
        out = capsys.readouterr().out
        assert "method      half_grpo" in out
        assert any(line.strip().startswith("half_grpo ") for line in out.splitlines())  # the preset's method list
        assert presets()[preset]["half_grpo"] == _preset_file()[preset]["all"]  # the preset's settings for every method
    assert main(["train", "--config", str(config), "--method", "half_grpo", "--dry-run"]) == 0  # a CLI choice

    # it appears in the figures' and the lab tables' method lists
    from repro import figure4, table_config

    assert figure4.curve_methods()[-1] == "half_grpo"
    for name in ("table1", "table2", "table1_core"):
        rows = table_config.load_table("lab", name).rows
        assert [r.label for r in rows if r.method == "half_grpo"] == ["Half GRPO"], name
    from repro import options, table1

    for argv in (["--dry-run"], ["--config", "table1_core", "--dry-run"]):  # the full table, the main job's
        capsys.readouterr()
        assert options.cli(table1.main, argv) == 0  # the table script plans a run of it
        assert "row='Half GRPO' method=half_grpo" in capsys.readouterr().out


def test_the_lab_tables_list_every_registered_method_once_in_registry_order():
    """Tables 1 and 2 train every registered method; the main job's Table 1 every one but those its config names in
    `all_methods_except`."""
    from repro import table_config

    for name in ("table1", "table2", "table1_core"):
        table = table_config.load_table("lab", name)
        trained = [r.method for r in table.rows if r.method != table_config.BASE]
        left_out = table.get("all_methods_except") or []
        assert trained == [m for m in obj.METHODS if m not in left_out], name
        assert set(left_out) <= set(obj.METHODS), name
    core = table_config.load_table("lab", "table1_core")
    assert core.get("all_methods_except") and core.seeds >= 2  # the main job leaves rows out, and judges on 2 seeds
    assert {"grpo", "tgpo", "rkl", "kdrl"} <= {r.method for r in core.rows}  # the central claim's rows stay
    for profile in ("smoke", "paper"):  # the main job's rows are the same in every profile
        assert [r.method for r in table_config.load_table(profile, "table1_core").rows] == [r.method for r in core.rows]
    with pytest.raises(table_config.UsageError, match="for lab tables"):
        table_config.expand_rows(["base", table_config.ALL_METHODS], "config x", "paper")


def test_all_methods_except_leaves_registered_methods_out_and_refuses_anything_else():
    from repro import table_config

    expanded = table_config.expand_rows(["base", table_config.ALL_METHODS], "config x", "lab", ["luffy", "tgpo"])
    assert expanded == ["base", *(m for m in obj.METHODS if m not in ("luffy", "tgpo"))]
    with pytest.warns(FutureWarning):  # a deprecated name leaves its method out
        renamed = table_config.expand_rows([table_config.ALL_METHODS], "config x", "lab", ["kdrl_reference"])
    assert "kdrl_authors" not in renamed and "kdrl" in renamed
    for bad, message in ((["nosuch"], r"config x: all_methods_except names unknown methods \['nosuch'\]"),
                         ("luffy", "expected a list of method names"), ([3], "expected a list of method names")):
        with pytest.raises(table_config.UsageError, match=message):
            table_config.expand_rows([table_config.ALL_METHODS], "config x", "lab", bad)
    with pytest.raises(table_config.UsageError, match="needs an 'all_methods' row"):
        table_config.expand_rows(["base", "grpo"], "config x", "lab", ["luffy"])


def test_loss_config_is_built_from_every_config_field():
    sources = obj.loss_config_sources()
    config_fields = {f.name for f in dataclasses.fields(TGPOConfig)}
    assert set(sources.values()) <= config_fields  # every loss hyperparameter is settable
    values = {"epsilon": 0.3, "epsilon_high": 0.4, "delta": 2.5, "entropy_coef": 0.02, "entropy_micro_batches": 4.0,
              "kdrl_beta": 0.7, "kdrl_estimator": "k3", "luffy_shaping_gamma": 0.25}
    assert set(values) == set(sources.values())
    args = TGPOConfig(output_dir="/tmp/tgpo-lc", method="luffy", use_cpu=True, bf16=False, **values)
    cfg = obj.LossConfig.from_config(args)
    assert {name: getattr(cfg, name) for name in sources} == {name: values[src] for name, src in sources.items()}


def _inputs(seed=0, B=6, T=7):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, 11, generator=gen, requires_grad=True)
    logp_all = torch.log_softmax(logits, -1)
    sampled = torch.randint(0, 11, (B, T), generator=gen)
    logp = logp_all.gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
    mask = torch.arange(T).unsqueeze(0) < torch.tensor([[7], [5], [3], [7], [6], [2]])
    return obj.LossInputs(
        logp=logp, old_logp=logp.detach() + 0.8 * torch.randn(B, T, generator=gen), mask=mask,
        advantages=torch.tensor([1.5, -1.0, 0.5, -0.5, 2.0, -2.0]), entropy=-(logp_all.exp() * logp_all).sum(-1),
        guided_logp=logp_all[..., 0], old_guided_logp=logp_all[..., 0].detach(),
        teacher_logp=logp.detach() - torch.rand(B, T, generator=gen), off_policy=torch.tensor([0, 0, 1, 0, 0, 1]).bool(),
        guidance_weight=0.3,
    )


PERTURBED = {"clip_eps": 0.05, "clip_eps_high": 0.07, "delta": 1.1, "entropy_coef": 0.5, "entropy_micro_batches": 3.0,
             "kdrl_beta": 0.9, "kdrl_estimator": "k3", "luffy_shaping_gamma": 0.6}


@pytest.mark.parametrize("method", list(obj.METHODS))
def test_a_method_reads_exactly_the_loss_fields_it_declares(method):
    assert set(PERTURBED) == set(obj.loss_config_sources())
    x, base = _inputs(), obj.LossConfig()
    reference = obj.method_loss(method, x, base).loss.item()
    declared = obj.METHODS[method].reads | obj.ENTROPY_FIELDS
    for name, value in PERTURBED.items():
        changed = obj.method_loss(method, x, dataclasses.replace(base, **{name: value})).loss.item()
        assert (changed != reference) == (name in declared), (method, name)


def test_presets_read_each_methods_own_settings_from_the_registry():
    known = set(preset_names())
    for name, spec in obj.METHODS.items():
        assert set(spec.presets) <= known, name
        for preset in known:
            settings = preset_settings(preset, name)
            assert set(settings) <= {"scale_rewards", "loss_type", "dr_grpo_row_mean", "entropy_coef"}
            assert settings["entropy_coef"] == 0.001  # the paper's bonus, set by every preset (docs/method.md §7)
    assert preset_settings("authors_final", "grpo")["loss_type"] == "dr_grpo"
    # the default aggregation of a config that names no loss_type comes from the method's entry
    for name, spec in obj.METHODS.items():
        args = make_args({"output_dir": "/tmp/tgpo-agg", "method": name}, probe=True)
        assert (args.loss_type, args.dr_grpo_row_mean) == spec.aggregation, name
    luffy = make_args({"output_dir": "/tmp/tgpo-agg", "method": "luffy", "loss_type": "dr_grpo"}, probe=True)
    assert luffy.dr_grpo_row_mean is True  # a loss_type set without a row mean is TRL's dr_grpo


def test_deprecated_names_still_work(tmp_path, tiny_pair, capsys):
    with pytest.warns(FutureWarning, match="'kdrl_reference' is deprecated; use 'kdrl_authors'"):
        args = TGPOConfig(output_dir=str(tmp_path), method="kdrl_reference", use_cpu=True, bf16=False)
    assert args.method == "kdrl_authors"
    assert obj.kdrl_reference is obj.kdrl_authors and obj.tipo_advantages is obj.tgpo_adv_advantages
    config = tmp_path / "old.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_pair[0]), "teacher_model": str(tiny_pair[1]), "trainer": {
        "method": "kdrl_reference", "per_device_train_batch_size": 8, "num_generations": 4, "max_steps": 2}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert load_run_config(config).method == "kdrl_authors"
        assert main(["train", "--config", str(config), "--dry-run"]) == 0
        assert "method      kdrl_authors" in capsys.readouterr().out
        assert main(["train", "--config", str(config), "--method", "kdrl_reference", "--dry-run"]) == 0
    x = _inputs()
    with pytest.warns(FutureWarning):
        old = obj.method_loss("kdrl_reference", x, obj.LossConfig()).loss
    assert torch.equal(old, obj.method_loss("kdrl_authors", x, obj.LossConfig()).loss)


def test_the_run_config_is_typed_and_checked_in_one_place(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "a/b", "trainer": {"method": "grpo", "learning_rat": 1e-6}}))
    with pytest.raises(ConfigError, match=r"'trainer': unknown field 'learning_rat'; did you mean 'learning_rate'"):
        load_run_config(path, check_paths=False)
    path.write_text(yaml.safe_dump({"model": "a/b", "dataset": {"path": "x.jsonl", "limit": 3},
                                    "launch": {"num_processes": 2}, "trainer": {"method": "grpo"}}))
    run = load_run_config(path, check_paths=False)
    assert (run.dataset.path, run.dataset.split, run.dataset.limit) == ("x.jsonl", "train", 3)
    assert run.launch.num_processes == 2 and run.launch.accelerate_config is None
    for section in ("dataset", "launch"):
        path.write_text(yaml.safe_dump({"model": "a/b", section: {"bogus": 1}}))
        with pytest.raises(ConfigError, match=f"'{section}': unknown key 'bogus'"):
            load_run_config(path, check_paths=False)


def test_ranges_are_declared_beside_the_fields_and_inherited_ones_keep_trls_defaults():
    from trl import GRPOConfig

    bounds = field_bounds()
    fields = {f.name: f for f in dataclasses.fields(TGPOConfig)}
    for name in ("learning_rate", "epsilon", "num_generations", "max_grad_norm"):
        parent = GRPOConfig.__dataclass_fields__[name]
        assert fields[name].default == parent.default and fields[name].metadata["help"] == parent.metadata["help"]
        assert name in bounds
    for name in ("guidance_weight", "kdrl_beta", "luffy_shaping_gamma", "teacher_temperature"):
        assert fields[name].metadata["bounds"] is bounds[name]
    with pytest.raises(ValueError, match=r"TGPOConfig\.luffy_shaping_gamma=0\.0: must be > 0"):
        TGPOConfig(output_dir="/tmp/tgpo-r", method="luffy", use_cpu=True, bf16=False, luffy_shaping_gamma=0.0)
    one_of = [f.name for f in dataclasses.fields(TGPOConfig) if "one_of" in f.metadata]
    assert set(one_of) == {"kdrl_estimator", "reward", "loss_type", "scale_rewards"}
    for name in one_of:
        with pytest.raises(ValueError, match=rf"TGPOConfig\.{name}='nope'.*expected one of"):
            TGPOConfig(output_dir="/tmp/tgpo-r", method="kdrl", use_cpu=True, bf16=False, **{name: "nope"})
    with pytest.raises(ValueError, match=r"TGPOConfig\.kdrl_beta=True: expected a number"):
        TGPOConfig(output_dir="/tmp/tgpo-r", method="kdrl", use_cpu=True, bf16=False, kdrl_beta=True)


def test_the_dry_run_reads_a_hub_models_config_from_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from tgpo.plan import build_plan

    snapshot = tmp_path / "models--Qwen--Qwen2.5-Math-7B" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    from tgpo.plan import KNOWN_MODELS

    cached = {k: v for k, v in KNOWN_MODELS["Qwen/Qwen2.5-Math-7B"].items() if k != "tokenizer"}
    (snapshot / "config.json").write_text(json.dumps({**cached, "num_hidden_layers": 3}))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    from pathlib import Path

    paper = Path(__file__).resolve().parents[1] / "repro" / "configs" / "paper"
    plan = build_plan(load_run_config(paper / "7b_cross_grpo.yaml", check_paths=False))
    assert "local Hugging Face cache" in plan["student"]["source"]
    assert plan["student"]["config"]["num_hidden_layers"] == 3  # read from the file, not the table
    assert plan["student"]["config"]["tokenizer"] == KNOWN_MODELS["Qwen/Qwen2.5-Math-7B"]["tokenizer"]


@pytest.mark.parametrize("kind", [obj.Aggregation("dapo", num_tokens=40), obj.Aggregation("dr_grpo", padded_length=7,
                                                                                            row_mean=False)])
def test_entropy_micro_batches_multiplies_the_bonus_and_nothing_else(kind):
    x = dataclasses.replace(_inputs(), aggregation=kind)
    cfg = obj.LossConfig()
    one, three = (obj.method_loss("grpo", x, dataclasses.replace(cfg, entropy_micro_batches=m)) for m in (1.0, 3.0))
    bonus = one.loss - obj.method_loss("grpo", x, dataclasses.replace(cfg, entropy_coef=0.0)).loss
    assert bonus.item() < 0  # a bonus: it lowers the loss
    torch.testing.assert_close(three.loss - one.loss, 2 * bonus)
