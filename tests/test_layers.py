"""Every package imports only packages below it (docs/ARCHITECTURE.md, "Layers").

Read from the source with `ast`, so a lazy import inside a function counts as much as one
at the top of a module: a cycle dodged by importing late is still a cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT, checkout_env

PACKAGE = ROOT / "gfrnet_tf"

# Bottom first. A package may import any package of a lower layer, none of its own layer
# or above. Keep in step with the table in docs/ARCHITECTURE.md.
LAYERS = (
    ("errors", "ibug68"),
    ("io", "ops", "serving_client", "precision"),
    ("runs", "losses", "faces", "data", "visualize"),
    ("models", "sample", "people"),
    ("export", "configs"),
    ("loading",),
    ("training", "restoration"),
    ("evaluation", "video", "pipelines"),
    ("ablation", "web"),
    ("apps",),
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def _top_level(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return relative.parts[0]


def _imported_packages(path: Path) -> set[str]:
    """The `gfrnet_tf` packages (first component after `gfrnet_tf.`) a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "gfrnet_tf":  # from gfrnet_tf import ops, losses
                names = [f"gfrnet_tf.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name.split(".")[1] for name in names if name.startswith("gfrnet_tf."))
    return found


def test_every_package_has_a_layer():
    packages = {_top_level(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert packages <= set(LAYER), f"no layer for {sorted(packages - set(LAYER))}"


def test_no_relative_imports():
    """Imports name their package in full, so the layer rule can read them."""
    relative = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert not relative


def test_packages_import_only_downward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        package = _top_level(path)
        if package == "__init__":
            continue
        for imported in sorted(_imported_packages(path) - {package}):
            if LAYER[imported] >= LAYER[package]:
                upward.append(
                    f"{path.relative_to(PACKAGE)} imports {imported} "
                    f"(layer {LAYER[imported]} >= {package}'s {LAYER[package]})"
                )
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("gfrnet_tf.models", ("training", "data", "configs", "export", "apps", "loading")),
        ("gfrnet_tf.ops", ("models", "data", "losses")),
        ("gfrnet_tf.evaluation", ("training", "configs", "ablation", "apps")),
    ],
)
def test_importing_a_package_loads_nothing_above_it(module, forbidden):
    """What a process actually loads (the rule above is read from the source)."""
    script = (
        f"import sys, {module}; print(' '.join(sorted({{m.split('.')[1] for m in sys.modules "
        f"if m.startswith('gfrnet_tf.')}})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=checkout_env(),
    ).stdout.split()
    assert not set(loaded) & set(forbidden), loaded
