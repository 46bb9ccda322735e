"""Checks of a model folder that need no weights loaded, run before training and by ``--dry-run``: a folder whose
``config.json`` disagrees with its weights, and a folder that needs its own Python code without the run's opt-in
(``trust_remote_code``). Each problem is one :class:`~tgpo.run_config.ConfigError` line naming the folder."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from .run_config import ConfigError

__all__ = ["check_model_folder", "weight_shapes"]

#: Names (suffixes) of the input-embedding matrix ``[vocab_size, hidden_size]`` among common architectures.
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")
_LAYER = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")
#: Files whose ``auto_map`` asks transformers to run the folder's own code.
CODE_FILES = ("config.json", "tokenizer_config.json")


def weight_shapes(folder: str | Path) -> dict[str, list[int]] | None:
    """``{tensor name: shape}`` from the headers of a folder's safetensors files (no tensor data is read); None
    when it holds none. A file whose header cannot be read raises :class:`ConfigError` naming it."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        return None
    shapes = {}
    for name in files:
        path = folder / name
        try:
            with path.open("rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(size))
        except (OSError, ValueError, struct.error) as err:
            raise ConfigError(f"{path}: not a readable safetensors file ({err})") from None
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def _config_vs_weights(folder: Path, config: dict) -> list[str]:
    """``["hidden_size 64 in config.json, 48 in the weights", ...]``; empty when they agree (or cannot be told)."""
    shapes = weight_shapes(folder)
    if not shapes:
        return []
    text = config.get("text_config") or config
    found = []
    embedding = next((s for k, s in shapes.items() if k.endswith(EMBEDDING_SUFFIXES) and len(s) == 2), None)
    if embedding is not None:
        for key, value in zip(("vocab_size", "hidden_size"), embedding):
            if text.get(key) is not None and text[key] != value:
                found.append(f"{key} {text[key]} in config.json, {value} in the weights")
    layers = {int(m.group(1)) for k in shapes if (m := _LAYER.search(k))}
    if layers and text.get("num_hidden_layers") is not None and text["num_hidden_layers"] != max(layers) + 1:
        found.append(f"num_hidden_layers {text['num_hidden_layers']} in config.json, {max(layers) + 1} in the weights")
    return found


def check_model_folder(path: str | Path | None, what: str, trust_remote_code: bool) -> None:
    """Raise :class:`ConfigError` (one line) when the local folder ``path`` (``what``: "student model", "teacher
    model") needs its own code without ``trust_remote_code``, or its config disagrees with its weights. A Hub id
    or a missing folder is left to the loaders."""
    if path is None or not Path(path).is_dir():
        return
    folder = Path(path)
    for name in CODE_FILES:
        file = folder / name
        try:
            auto_map = json.loads(file.read_text()).get("auto_map") if file.is_file() else None
        except (OSError, ValueError) as err:
            raise ConfigError(f"{what} {folder}: {name} is not valid JSON ({err})") from None
        if auto_map and not trust_remote_code:
            code = sorted({str(v[0] if isinstance(v, list) else v) for v in auto_map.values() if v})
            raise ConfigError(f"{what} {folder} needs its own code ({name} auto_map: {', '.join(code)}); it is not "
                              "run without opt-in: set trust_remote_code: true in the run config if you trust it")
    config_file = folder / "config.json"
    if config_file.is_file():
        problems = _config_vs_weights(folder, json.loads(config_file.read_text()))
        if problems:
            raise ConfigError(f"{what} {folder}: config.json disagrees with its weights ({'; '.join(problems)}); "
                              "the folder is inconsistent: save the model again (or run `tgpo align` on a teacher)")
