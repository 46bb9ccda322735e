"""How a result was made: the git commit and the versions of the libraries that made it."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tgpo", "torch", "transformers", "trl", "accelerate", "lm_eval", "math-verify", "datasets", "pandas", "vllm")


def git_sha(repo: Path = REPO_ROOT, ignore: tuple[str, ...] = ()) -> str | None:
    """``HEAD``'s sha, with ``-dirty`` when tracked files outside the folders ``ignore`` (relative to the checkout's
    root, e.g. an output folder) have uncommitted changes; None outside a checkout."""
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        sha = run("rev-parse", "HEAD")
        changes = run("status", "--porcelain", "--untracked-files=no", "--", ":/",
                      *(f":(top,exclude){folder}" for folder in ignore))
        return sha + ("-dirty" if changes else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python and each installed package's version (absent packages are left out)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions
