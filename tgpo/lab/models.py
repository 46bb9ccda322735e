"""Tiny Llama-config (and Mistral-config: a sliding window) models for the lab: pre-training, generation, evaluation, building and caching.

Pre-training is plain teacher-forced cross-entropy on solutions (loss on completion tokens and EOS only);
the RL stage on top is the project's ``TGPOTrainer``, not this module. Everything runs with one thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from tgpo.lab import world as W
from tgpo.lab.config import (
    DEFAULT_MODELS,
    LAB_VERSION,
    STUDENT,
    WORLD,
    WORLDS,
    LabModelConfig,
    config_hash,
    get_model_config,
)
from tgpo.lab.tokenizer import build_tokenizer, special_ids

BUILD_INFO = "build_info.json"
#: Folder of the stored lab models inside the ``tgpo.lab`` package.
ZOO = "zoo"
EVAL_TEMPERATURE = 0.6


def default_models_dir() -> Path:
    """``$TGPO_LAB_MODELS``, else the models shipped with the package (``tgpo/lab/zoo/``, package data)."""
    env = os.environ.get("TGPO_LAB_MODELS")
    if env:
        return Path(env)
    from importlib.resources import files

    return Path(str(files("tgpo.lab").joinpath(ZOO)))


def model_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Folder of a built lab model (loadable with ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained``)."""
    return (
        Path(root)
        if root is not None and Path(root).name == name
        else Path(root or default_models_dir()) / name
    )


def _set_threads():
    torch.set_num_threads(1)


def new_model(cfg: LabModelConfig, tokenizer=None):
    """A freshly initialised model of ``cfg.arch``: Llama, or Mistral (the same decoder with a sliding attention
    window) when the architecture has a window."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    tokenizer = tokenizer or build_tokenizer()
    a = cfg.arch
    shape = dict(
        vocab_size=len(tokenizer),
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        num_hidden_layers=a.num_hidden_layers,
        num_attention_heads=a.num_attention_heads,
        num_key_value_heads=a.num_attention_heads,
        max_position_embeddings=WORLD.max_positions,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        **special_ids(),
    )
    if a.sliding_window is None:
        model = LlamaForCausalLM(LlamaConfig(**shape))
    else:
        model = MistralForCausalLM(MistralConfig(**shape, sliding_window=a.sliding_window,
                                                 head_dim=a.hidden_size // a.num_attention_heads))
    g = model.generation_config
    ids = special_ids()
    g.eos_token_id, g.pad_token_id, g.bos_token_id = (
        ids["eos_token_id"],
        ids["pad_token_id"],
        ids["bos_token_id"],
    )
    g.max_new_tokens = WORLD.max_gen_toks
    g.do_sample = False
    return model


def load(name_or_path: str | os.PathLike, root=None):
    """(model, tokenizer) of a built lab model, by name or folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(name_or_path)
    if not p.exists():
        p = model_path(str(name_or_path), root)
    if not (p / "config.json").exists():  # not a Hub id: say which folder is missing, not what the Hub answers
        raise FileNotFoundError(f"lab model {str(name_or_path)!r} is not built ({p}); build it with: "
                                f"tgpo lab build --only {Path(name_or_path).name}")
    model = AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(p)


# --------------------------------------------------------------------------- generation / evaluation
@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    temperature: float = 0.0,
    max_new_tokens: int = WORLD.max_gen_toks,
    seed: int = 0,
    batch_size: int = 256,
) -> list[str]:
    """Completions (text up to EOS, special tokens dropped) with ``model.generate``. Greedy when
    ``temperature == 0``; otherwise sampled from the full distribution at ``temperature`` (seeded by ``seed``).

    Prompts are grouped by token length, so no padding is involved (identical to unbatched decoding).
    """
    _set_threads()
    model.eval()
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(enc):
        by_len.setdefault(len(ids), []).append(i)
    out: list[str] = [""] * len(prompts)
    sample = bool(temperature and temperature > 0)
    options = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
    if sample:
        torch.manual_seed(seed)
    for length in sorted(by_len):
        idx = by_len[length]
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            x = torch.tensor([enc[i] for i in chunk])
            seqs = model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **options,
            )
            for i, row in zip(chunk, seqs[:, length:]):
                out[i] = tokenizer.decode(row, skip_special_tokens=True)
    return out


def evaluate(model, tokenizer, rows: Sequence[dict], temperature: float = 0.0, seed: int = 0) -> dict:
    comps = generate(model, tokenizer, [r["prompt"] for r in rows], temperature=temperature, seed=seed)
    correct = [W.is_correct(c, r["answer"]) for c, r in zip(comps, rows)]
    return {
        "accuracy": sum(correct) / max(len(rows), 1),
        "n": len(rows),
        "mean_len_chars": sum(map(len, comps)) / max(len(rows), 1),
        "completions": comps,
        "correct": correct,
    }


def evaluate_splits(model, tokenizer, splits=("rl_train", *W.EVAL_SPLITS), temperature=0.0, n_rl=200, seed=0):
    res = {}
    for s in splits:
        rows = W.make_split(s, n=n_rl, seed=10_000) if s == "rl_train" else W.make_split(s)
        res[s] = round(evaluate(model, tokenizer, rows, temperature=temperature, seed=seed)["accuracy"], 4)
    return res


@torch.no_grad()
def argmax_agreement(model, tokenizer, rows: Sequence[dict], reference=None, field: str = "solution") -> dict:
    """How often ``model``'s next-token argmax equals the gold token of ``row[field]`` + EOS (default: the
    S-style solution), or — with ``reference`` — the reference model's argmax, on the same gold prefixes.

    Returns overall agreement over completion positions and agreement at the first token of each arithmetic
    step (where a cross-family teacher prefers to start a T-style step).
    """
    _set_threads()
    model.eval()
    n_all = n_ok = n_start = n_start_ok = 0
    for r in rows:
        p_ids = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        comp = r[field]
        c_ids = tokenizer(comp, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        x = torch.tensor([p_ids + c_ids])
        pred = model(input_ids=x).logits[0, len(p_ids) - 1 : -1].argmax(-1)
        if reference is not None:
            target = reference(input_ids=x).logits[0, len(p_ids) - 1 : -1].argmax(-1)
        else:
            target = torch.tensor(c_ids)
        ok = (pred == target).tolist()
        # token index of each step start: characters map 1:1 to tokens before \boxed{
        starts = set(W.step_start_offsets(comp))
        n_all += len(ok)
        n_ok += sum(ok)
        for t in starts:
            n_start += 1
            n_start_ok += ok[t]
    return {"overall": round(n_ok / n_all, 4), "step_start": round(n_start_ok / max(n_start, 1), 4)}


# --------------------------------------------------------------------------- pre-training
def _lr_at(step: int, cfg) -> float:
    # Kept by hand: transformers' cosine-with-min-lr schedule starts warmup at 0, not lr/warmup, and the stored
    # models were trained on this exact sequence (a forced rebuild must stay bit-identical).
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _batch(rng, tokenizer, pc, world):
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    seqs, labels = [], []
    for _ in range(pc.batch_size):
        prompt, segments = W.sample_pretrain_segments(
            rng, pc.k_weights, pc.t_share, world, pc.two_digit_share, pc.two_digit_ks, pc.u_share, pc.long_share,
            pc.read_short_share,
        )
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c, lc = [], []
        for text, trained in segments:  # one id per character (tgpo.lab.tokenizer): segments tokenize apart
            ids_ = tokenizer(text, add_special_tokens=False)["input_ids"]
            c += ids_
            lc += ids_ if trained else [-100] * len(ids_)
        seqs.append(p + c + [eos])
        labels.append([-100] * len(p) + lc + [eos])
    L = max(map(len, seqs))
    ids = torch.full((len(seqs), L), pad)
    lab = torch.full((len(seqs), L), -100)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(lb)] = torch.tensor(lb)
        mask[i, : len(s)] = 1
    return ids, mask, lab


def pretrain(cfg: LabModelConfig, tokenizer=None, log: Callable[[str], None] = print, world=WORLD):
    """Build and pre-train one model (deterministic for a given config, seed and machine). -> (model, info)"""
    _set_threads()
    tokenizer = tokenizer or build_tokenizer()
    torch.manual_seed(cfg.seed)
    model = new_model(cfg, tokenizer)
    pc = cfg.pretrain
    rng = random.Random(f"tgpo-lab/pretrain/{cfg.seed}")
    opt = torch.optim.AdamW(model.parameters(), lr=pc.lr, betas=(0.9, 0.98), weight_decay=pc.weight_decay)
    dev = {k: W.make_split(f"dev_k{k}", n=pc.dev_size) for k in pc.stop_ks}
    history, step, loss_ema = [], 0, None
    model.train()
    for step in range(1, pc.steps + 1):
        for gp in opt.param_groups:
            gp["lr"] = _lr_at(step - 1, pc)
        ids, mask, lab = _batch(rng, tokenizer, pc, world)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            lab[:, 1:].reshape(-1),
            ignore_index=-100,
            label_smoothing=pc.label_smoothing,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), pc.grad_clip)
        opt.step()
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if pc.eval_every and step % pc.eval_every == 0 and dev:
            accs = {f"dev_k{k}": evaluate(model, tokenizer, rows)["accuracy"] for k, rows in dev.items()}
            model.train()
            history.append({"step": step, "loss": round(loss_ema, 4), **accs})
            log(
                f"[{cfg.name}] step {step} loss {loss_ema:.4f} "
                + " ".join(f"{k} {v:.3f}" for k, v in accs.items())
            )
            if all(v >= pc.stop_at for v in accs.values()):
                break
        elif step % 100 == 0:
            log(f"[{cfg.name}] step {step} loss {loss_ema:.4f}")
    model.eval()
    return model, {"steps_run": step, "final_loss_ema": round(loss_ema or 0.0, 4), "dev_history": history}


# --------------------------------------------------------------------------- build / cache
def read_build_info(path: str | os.PathLike) -> dict | None:
    f = Path(path) / BUILD_INFO
    return json.loads(f.read_text()) if f.exists() else None


def is_built(cfg: LabModelConfig, out: str | os.PathLike) -> bool:
    d = Path(out) / cfg.name
    info = read_build_info(d)
    return bool(info and info.get("config_hash") == config_hash(cfg) and (d / "model.safetensors").exists())


def measure(model, tokenizer, cfg: LabModelConfig, out: Path | None = None) -> dict:
    """Accuracies (greedy; and sampled at T=0.6 for students) and, for teachers, argmax agreement."""
    m: dict = {"greedy": evaluate_splits(model, tokenizer)}
    if cfg.role in ("student", "test"):
        m[f"sampled_t{EVAL_TEMPERATURE:g}"] = evaluate_splits(model, tokenizer, temperature=EVAL_TEMPERATURE)
    if cfg.role == "teacher":
        rows = W.make_split("id")
        agree = {"vs_gold_S": argmax_agreement(model, tokenizer, rows)}
        sdir = (out / STUDENT) if out is not None else None
        if sdir is not None and (sdir / "model.safetensors").exists():
            student, _ = load(sdir)
            agree["vs_student_argmax"] = argmax_agreement(model, tokenizer, rows, reference=student)
            agree["student_config_hash"] = (read_build_info(sdir) or {}).get("config_hash")
        m["argmax_agreement_id"] = agree
    return m


def build_one(
    cfg: LabModelConfig, out: str | os.PathLike, force: bool = False, log=print, do_measure=True
) -> dict:
    """Build (pre-train, measure, save) one model into ``out/<name>``; skipped if its config hash matches."""
    out = Path(out)
    target = out / cfg.name
    if not force and is_built(cfg, out):
        log(f"[{cfg.name}] up to date (config hash {config_hash(cfg)}), skipped")
        return {"name": cfg.name, "skipped": True, **(read_build_info(target) or {})}
    import transformers

    t0 = time.perf_counter()
    tokenizer = build_tokenizer()
    model, train_info = pretrain(cfg, tokenizer, log=log)
    build_s = time.perf_counter() - t0
    metrics = measure(model, tokenizer, cfg, out) if do_measure else {}
    info = {
        "name": cfg.name,
        "role": cfg.role,
        "description": cfg.description,
        "config": cfg.to_dict(),
        "world": dataclasses.asdict(WORLDS[cfg.world]),
        "lab_version": LAB_VERSION,
        "config_hash": config_hash(cfg),
        "seed": cfg.seed,
        "n_params": sum(p.numel() for p in model.parameters()),
        "build_seconds": round(build_s, 1),
        "measure_seconds": round(time.perf_counter() - t0 - build_s, 1),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        **train_info,
        "metrics": metrics,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    tmp = out / f".{cfg.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log(f"[{cfg.name}] built in {build_s:.1f}s -> {target}  {json.dumps(metrics)}")
    return info


def remeasure(name: str, out=None, log=print) -> dict:
    """Recompute a built model's metrics (e.g. a teacher's agreement with a student built after it)."""
    out = Path(out) if out is not None else default_models_dir()
    d = out / name
    info = read_build_info(d)
    if info is None:
        raise FileNotFoundError(f"{d} has no {BUILD_INFO}")
    model, tok = load(d)
    info["metrics"] = measure(model, tok, get_model_config(name), out)
    (d / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
    log(f"[{name}] re-measured: {json.dumps(info['metrics'])}")
    return info


def build(names: Sequence[str] | None = None, out=None, force: bool = False, log=print) -> list[dict]:
    """Build the named models (default: student, student_small, teacher_in, teacher_cross) in that order."""
    out = Path(out) if out is not None else default_models_dir()
    names = list(names or DEFAULT_MODELS)
    # students first: teachers' agreement is measured against the built student
    names.sort(key=lambda n: get_model_config(n).role == "teacher")
    return [build_one(get_model_config(n), out, force=force, log=log) for n in names]
