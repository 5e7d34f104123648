"""Imports go one way (design.md): cli, webui → recipes → train, data, models, adapters, infer → config → utils.

Every import in the package is checked, the ones inside functions too: a module may import from its own layer or a
lower one, never from a higher one. The package root (``tuneforge/__init__.py``) is the composition root: it imports
the modules that register the method, loss and stage records, and nothing imports it for anything else."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "tuneforge"

# Top to bottom. A sub-package or module not listed fails the test, so a new one has to be placed.
LAYERS = [
    ("interfaces", {"cli", "cli_help", "__main__", "webui", "serve"}),
    ("recipes", {"recipes"}),
    ("library", {"train", "data", "models", "adapters", "infer", "estimate", "eval", "fast"}),
    ("config", {"config", "errors"}),
    ("utils", {"utils", "compat"}),
]
RANK = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def unit(module: str) -> str | None:
    """``tuneforge.train.loop`` → ``train``; ``tuneforge`` itself → None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tuneforge" and len(parts) > 1 else None


def imports(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, imported tuneforge module) for every import statement of ``path`` (a module of ``package``)."""
    package = package or ".".join(("tuneforge", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                    else []))
            if base == "tuneforge":  # from tuneforge import compat, adapters, …
                out += [(node.lineno, f"tuneforge.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, base))
    return [(line, m) for line, m in out if m == "tuneforge" or m.startswith("tuneforge.")]


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts == ("__init__.py",):
            continue
        yield path, rel.parts[0].removesuffix(".py")


def test_every_part_of_the_package_has_a_layer():
    units = {u for _, u in modules()}
    assert units and not units - set(RANK), f"place these in LAYERS: {sorted(units - set(RANK))}"


def test_imports_never_go_up_a_layer():
    bad = []
    for path, here in modules():
        for line, target in imports(path):
            there = unit(target)
            if there is None:
                if target == "tuneforge" or target.startswith("tuneforge.__"):
                    continue  # `from tuneforge import __version__`
                bad.append(f"{path.relative_to(SRC)}:{line} imports {target}")
            elif there in RANK and RANK[there] < RANK[here]:
                bad.append(f"{path.relative_to(SRC)}:{line} ({LAYERS[RANK[here]][0]}) imports {target} "
                           f"({LAYERS[RANK[there]][0]})")
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The checker itself: function-level and relative upward imports are found (so the test above can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from . import schema\n\n\ndef f():\n    from tuneforge.recipes import run\n"
                     "    from ..train import loop\n    return run, loop\n")
    found = imports(probe, "tuneforge.config")
    assert found == [(1, "tuneforge.config"), (5, "tuneforge.recipes"), (6, "tuneforge.train")]
    assert RANK[unit("tuneforge.recipes")] < RANK["config"] and RANK[unit("tuneforge.train")] < RANK["config"]
