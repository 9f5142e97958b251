"""The kernel knows no higher layer: no module under bootstrap/kernel/ imports another part
of bootstrap (a stage, the environment, the supervisor, the CLI) or an app, not even under
``TYPE_CHECKING`` or inside a function. Walked from the source with ast, every import
statement wherever it stands."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.boots import REPO

KERNEL = REPO / "bootstrap" / "kernel"
# The repository's own top-level packages and modules besides bootstrap: apps and tools.
FIRST_PARTY = {path.stem if path.suffix == ".py" else path.name
               for path in REPO.iterdir()
               if (path.suffix == ".py" or (path / "__init__.py").exists()
                   or path.name in ("bench", "image"))} - {"bootstrap"}


def imported(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the kernel package
                base = ".".join(["bootstrap", "kernel"][: 2 - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module == "bootstrap":  # `from bootstrap import stages`: the alias is the module
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def outside_the_kernel(module: str) -> bool:
    top = module.split(".")[0]
    if top in FIRST_PARTY:
        return True
    return top == "bootstrap" and not (module == "bootstrap.kernel"
                                       or module.startswith("bootstrap.kernel."))


def test_the_walk_sees_what_it_must_refuse(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from bootstrap.stages.hydrate import LaterUnpack\n"
                     "def f():\n    import f5worker.settings\n    from .. import cli\n"
                     "from bootstrap import stages\n")
    names = sorted(module for _, module in imported(probe) if outside_the_kernel(module))
    assert names == ["bootstrap.cli", "bootstrap.stages", "bootstrap.stages.hydrate",
                     "f5worker.settings"]
    assert "f5worker" in FIRST_PARTY


def test_no_kernel_module_imports_a_higher_layer() -> None:
    bad = [f"{path.relative_to(REPO)}:{line}: {module}"
           for path in sorted(KERNEL.rglob("*.py"))
           for line, module in imported(path) if outside_the_kernel(module)]
    assert bad == [], "\n".join(bad)
