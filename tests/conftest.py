"""Shared test set-up: quiet TensorFlow, deterministic seeds, small shapes."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import subprocess
import sys

import numpy as np
import pytest

import support


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """`(model, path)`: an untrained `support.SHALLOW` GFRNet at `support.SIZE` saved as a
    `.keras` file (what training checkpoints are)."""
    model = support.built_gfrnet()
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return model, path


@pytest.fixture
def hide_module(monkeypatch):
    """`hide_module(name)`: for this test, importing `name` or any of its submodules raises
    `ImportError`, as if the package were not installed (even if it is imported already)."""

    def hide(name):
        for loaded in [m for m in sys.modules if m.startswith(f"{name}.")]:
            monkeypatch.setitem(sys.modules, loaded, None)
        monkeypatch.setitem(sys.modules, name, None)

    return hide


@pytest.fixture
def mixed_float16():
    """Keras' global policy `mixed_float16` for the test (float16 compute, float32 weights)."""
    with support.dtype_policy("mixed_float16"):
        yield


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory):
    """The project built as a wheel and installed into a fresh venv (`--no-deps`, over this
    environment's packages): the `bin/` folder of its commands and its Python.

    The source is copied first, so building leaves nothing in the checkout; it builds with
    this environment's setuptools (the `dev` extra requires one that reads pyproject.toml),
    offline. The venv sees this environment's packages through `parent_packages.pth`, not
    `--system-site-packages`: run from a venv, that flag exposes the *base* interpreter's
    packages, not the venv's (docs/DESIGN.md, "Facts found on 2026-12-06").
    """
    import shutil
    import site
    from pathlib import Path

    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(
        support.ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", "runs", ".pytest_cache"
        ),
    )

    def run(*command):
        subprocess.run(command, check=True, capture_output=True, timeout=600, cwd=work)

    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(work / "dist"),
        str(source),
    )
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Processed after the venv's own packages (which then win): the wheel shadows any
    # editable install of the checkout in this environment.
    parents = [
        *site.getsitepackages(),
        *([site.getusersitepackages()] if site.ENABLE_USER_SITE else []),
    ]
    Path(own, "parent_packages.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents)
    )
    (wheel,) = (work / "dist").glob("gfrnet_tf-*.whl")
    run(str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel))
    return venv / "bin", wheel


@pytest.fixture
def read_only_folder(tmp_path):
    """An existing folder nobody can write into: mode 0555, or immutable for root (whom
    file modes do not stop)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: no folder is read-only to root")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def pytest_collection_modifyitems(items):
    """Modules holding `slow` tests run first (each module kept whole, so its module-scoped
    fixtures are built once): pytest-xdist hands out the first tests in large chunks and the
    rest as workers free up, so the suite then ends on short tests and no worker waits
    alone at the end behind a minute-long one."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow_modules)
