"""What many test files share: the tiny models, the checkout, child processes, round trips.

Test files import it as `support` (setup.cfg puts `tests/` and the checkout on pytest's
`sys.path`); the fixtures made of it are in conftest.py. Heavy imports wait for the
function that needs them, so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

# `with dtype_policy(name):` Keras computes under `name` inside, as before after it.
from gfrnet_tf.precision import policy_scope as dtype_policy  # noqa: F401  (for the tests)

# The checkout: gfrnet_tf/, benchmarks/, docs/, tests/.
ROOT = Path(__file__).resolve().parents[1]

SIZE, BATCH = 32, 2
# GFRNet at test scale: depth 5 takes SIZE px down to 1x1, as the paper's 8 levels take 256 px.
TINY = {"widths": (8, 16, 16, 16, 16), "discriminator_widths": (8, 16), "local_size": 16}
# Depth 3: the cheapest network that has every part, for exports, loading and serving.
SHALLOW = {**TINY, "widths": (8, 16, 16)}
# What TensorFlow's native code prints when nobody quiets it (issue 26): start-up lines,
# device probing, graph-optimiser errors that change nothing. A command's output has none.
NATIVE_NOISE = ("E0000", "cuInit", "absl::InitializeLog", "cudart_stub", "remapper failed")


def config_flags(model=TINY, size=SIZE) -> list[str]:
    """`model` and the image size as a command's `--config.*` overrides."""
    return [f"--config.input.image_size={size}"] + [
        f"--config.model.{key}={value}" for key, value in model.items()
    ]


def train_command(workdir, *flags) -> list[str]:
    """`gfrnet-train` (as `python -m`) of a `TINY` model from the `smoke` preset: SIZE px,
    batches of BATCH, synthetic-pose guides, then `flags`."""
    return [
        sys.executable,
        "-m",
        "gfrnet_tf.apps.train",
        "--config=smoke",
        f"--workdir={workdir}",
        "--synthetic_pose",
        *config_flags(),
        f"--config.input.batch_size={BATCH}",
        *flags,
    ]


def built_gfrnet(model=SHALLOW, size=SIZE):
    """An untrained `GFRNet` of config `model` with its weights made for `size` px inputs."""
    from gfrnet_tf.models.gfrnet import build_gfrnet

    gfrnet = build_gfrnet(model)
    gfrnet.build({"degraded": (None, size, size, 3), "guide": (None, size, size, 3)})
    return gfrnet


def config_round_trip(model):
    """`model` rebuilt from its `get_config()` (unbuilt), checked to give the same config."""
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    return clone


def keras_file_round_trip(model, folder, name="model.keras"):
    """`model` saved as the `.keras` file `folder/name` and loaded back, as a user's file is."""
    import keras

    path = Path(folder) / name
    model.save(path)
    return keras.saving.load_model(path)


def tree_hashes(root):
    """`{relative path: sha256}` of every file and symlink under `root`, hidden ones too."""
    hashes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            content = (
                os.fsencode(os.readlink(path)) if os.path.islink(path) else Path(path).read_bytes()
            )
            hashes[os.path.relpath(path, root)] = hashlib.sha256(content).hexdigest()
    return hashes


# Beam pipelines in tests: the DirectRunner in this process, or over worker processes.
IN_PROCESS = ["--direct_running_mode=in_memory"]
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@contextlib.contextmanager
def dask_cluster(workers: int = 2):
    """Yields the Beam arguments that run a pipeline on Beam's Dask runner over a local
    `distributed.LocalCluster` of `workers` single-threaded processes bound to 127.0.0.1,
    stopped afterwards (skips the test without `distributed`)."""
    import pytest

    from gfrnet_tf.pipelines.runner import DASK_RUNNER

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        host="127.0.0.1",
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    ) as cluster:
        yield ["--runner", DASK_RUNNER, "--dask_client_address", cluster.scheduler_address]


def free_port() -> int:
    """A localhost TCP port nothing listens on (once the probe socket is closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def checkout_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process running this checkout's code (a command, a
    benchmark, a test file as a worker script), installed or not: the checkout first on
    PYTHONPATH, TensorFlow's C++ log quiet, no GPU and no `TF_CONFIG` cluster."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **env,
        "PYTHONPATH": path,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        **overrides,
    }


def installed_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process that must see only what is installed (the wheel's
    commands run as a user runs them, from a shell that sets no PYTHONPATH and no
    TensorFlow log level)."""
    unset = ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    return {**env, **overrides}


def run_checkout(*command, env=None, timeout=600, **options) -> subprocess.CompletedProcess:
    """`command` run from the checkout's root with `checkout_env(**env)`; output captured as
    text unless `options` say otherwise."""
    return subprocess.run(
        [str(word) for word in command],
        cwd=ROOT,
        env=checkout_env(**(env or {})),
        timeout=timeout,
        **{"capture_output": True, "text": True, **options},
    )


def run_module(module: str, *args, **options) -> subprocess.CompletedProcess:
    """`python -m module args` by `run_checkout`: how tests run a command (absl flags are
    global to a process, and the commands share flag names)."""
    return run_checkout(sys.executable, "-m", module, *args, **options)


def smooth_batch(size=SIZE, batch=BATCH, seed=0, margin=6):
    """`(inputs, targets)` for GFRNet's train step: smooth images a small network fits in a
    few dozen steps, noisy copies as the degraded input, the guide shifted 2 px right with
    its landmarks; the landmarks lie `margin` px or more inside the image."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1.0)
    target = np.stack(
        [
            np.stack([np.sin(3 * xx + c + b) * np.cos(2 * yy - c) for c in range(3)], -1)
            for b in range(batch)
        ]
    ).astype(np.float32)
    landmarks = rng.uniform(margin, size - margin - 1, (batch, 68, 2)).astype(np.float32)
    inputs = {
        "degraded": (target + rng.normal(0, 0.2, target.shape)).clip(-1, 1).astype(np.float32),
        "guide": np.roll(target, 2, axis=2),
    }
    targets = {"target": target, "landmarks": landmarks, "guide_landmarks": landmarks + [2.0, 0.0]}
    return inputs, targets


def snapshot(variables) -> list:
    """Copies of the variables' values, to tell later which of them a step changed."""
    return [variable.numpy().copy() for variable in variables]


def changed(before, variables) -> list[bool]:
    """For each variable, whether it differs from its `snapshot` value `before`."""
    import numpy as np

    return [not np.array_equal(old, variable.numpy()) for old, variable in zip(before, variables)]
