"""The import rules of docs/architecture.md, checked on the source: the ground floor imports neither TRL nor lm-eval
nor the rest of the package above it, the library never imports ``repro`` or the tests, and the package's
module-level imports form no loop."""

import ast
from pathlib import Path

import pytest

import tgpo

PACKAGE = Path(tgpo.__file__).resolve().parent
#: Modules (``name.py``) and packages (``name/``) of the ground floor.
GROUND_FLOOR = ("objectives", "grading")
ABOVE_GROUND = ("trainer", "teacher", "train_cli", "eval", "plan", "run_config", "cli", "lab")


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module_level_only: bool, root: Path = PACKAGE.parent) -> set[str]:
    """Absolute names ``path`` imports (relative imports resolved); only top-level statements if asked."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    package = module_name(path, root).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path, root)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


SOURCES = sorted(PACKAGE.rglob("*.py"))


def imported_module(name: str, modules) -> str | None:
    """The package module an imported name lives in: the name itself, or (``from pkg import attr``) its parent."""
    return name if name in modules else name.rsplit(".", 1)[0] if name.rsplit(".", 1)[0] in modules else None


def ground_floor_files() -> list[Path]:
    return [p for name in GROUND_FLOOR
            for p in (sorted((PACKAGE / name).rglob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"])]


@pytest.mark.parametrize("path", ground_floor_files(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_the_ground_floor_stays_pure(path):
    found = imports(path, module_level_only=False)
    banned = {n for n in found if n.split(".")[0] in ("trl", "lm_eval", "transformers", "datasets")
              or any(n == f"tgpo.{up}" or n.startswith(f"tgpo.{up}.") for up in ABOVE_GROUND)}
    assert not banned, f"{path.relative_to(PACKAGE.parent)} imports {sorted(banned)}"


def test_the_grader_is_one_self_contained_package():
    """tgpo/grading imports nothing else of tgpo, and holds every module of the grader (no verdict code left
    beside it but the deprecated re-exports)."""
    files = sorted((PACKAGE / "grading").rglob("*.py"))
    assert {p.stem for p in files} >= {"__init__", "verdicts", "oat", "pool", "jobs", "cache", "mathverify", "text"}
    outside = {module_name(p): sorted(n for n in imports(p, False) if n.split(".")[0] == "tgpo"
                                      and not n.startswith("tgpo.grading")) for p in files}
    assert not {m: v for m, v in outside.items() if v}
    assert not (PACKAGE / "verdict_pool.py").exists() and not (PACKAGE / "verify_cache.py").exists()


def test_the_library_never_imports_repro_or_tests():
    offenders = {module_name(p): sorted(n for n in imports(p, False) if n.split(".")[0] in ("repro", "tests"))
                 for p in SOURCES}
    assert not {m: v for m, v in offenders.items() if v}


def find_loop(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports) as a path, or None."""
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (loop := visit(n, stack + [n])):
                return loop
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (loop := visit(m, [m])):
            return loop
    return None


def test_module_level_imports_form_no_loop():
    modules = {module_name(p): p for p in SOURCES}
    graph = {m: {target for n in imports(p, True) if (target := imported_module(n, modules)) not in (None, m)
                 and not m.startswith(target + ".")}  # a submodule's own package is set up before it: not a loop
             for m, p in modules.items()}
    assert find_loop(graph) is None, "import loop: " + " -> ".join(find_loop(graph))
    assert find_loop({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check can fail


def test_relative_imports_resolve_to_package_modules(tmp_path):
    """The checker reads ``from . import x`` and ``from .y import z`` as imports of package modules."""
    pkg = tmp_path / "tgpo"
    pkg.mkdir()
    mod = pkg / "mod.py"
    mod.write_text("from . import objectives\nfrom .scoring import math_correct\n")
    found = imports(mod, True, root=tmp_path)
    assert {"tgpo.objectives", "tgpo.scoring.math_correct"} <= found
