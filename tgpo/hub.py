"""Where a model named by the user lives: a local folder, or a Hub id, as TRL's ``GRPOTrainer`` resolves ``model``.

``TGPOTrainer`` (student and teacher), ``tgpo train`` (also ``--dry-run``) and ``tgpo align`` all go through
:func:`resolve_model`, so a name means the same thing everywhere:

1. an existing local folder — used as it is;
2. a Hub id (``org/name`` or ``name``) already in the local Hugging Face cache (``HF_HUB_CACHE``) — its cached
   snapshot folder, online or offline (what ``from_pretrained`` would read);
3. a Hub id not in the cache — online, the id itself (``from_pretrained`` downloads it, as TRL does); offline
   (``HF_HUB_OFFLINE=1``), :class:`ModelNotFoundError` with one line naming the id.

Anything shaped like a path (``./x``, ``/x``, ``~/x``, more than one ``/``) that does not exist is a missing path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ModelNotFoundError", "is_offline", "resolve_model"]


class ModelNotFoundError(FileNotFoundError):
    """A model name that is neither a local folder nor obtainable from the Hub (cache); one line, naming it."""


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` as the Hub client reads it (set before the process imports ``huggingface_hub``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or not text.strip()


def _cached_snapshot(repo_id: str) -> str | None:
    """The cached snapshot folder of ``repo_id`` (its ``main`` revision), or None when it is not in the cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError):
        return None


def resolve_model(name, role: str = "model") -> str:
    """A local folder for ``name`` (the folder itself or the cached Hub snapshot), else, online, the Hub id.

    Args:
        name: a folder path or a Hub id.
        role: how the message calls it (``student model``, ``teacher model``, ...).
    Raises:
        ModelNotFoundError: a path that does not exist, or (offline) an id that is not in the local cache.
    """
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        return str(path)
    if _looks_like_path(text):
        raise ModelNotFoundError(f"{role} path {text!r} does not exist")
    snapshot = _cached_snapshot(text)
    if snapshot is not None:
        return snapshot
    if is_offline():
        from huggingface_hub import constants

        raise ModelNotFoundError(
            f"{role} {text!r} is not a local folder and not in the local Hugging Face cache ({constants.HF_HUB_CACHE}); "
            "HF_HUB_OFFLINE=1, so it cannot be downloaded"
        )
    return text
