"""`gfrnet-restore --runner`: a library restored on Beam writes the one-machine command's bytes.

One generated library (61 photos of three people in four albums, degraded copies, two-person
photos, a clip, a photo without a face and a file that is no image) is restored by the
one-machine command, by the DirectRunner over two worker processes and by Beam's Dask
runner on a two-worker cluster; every output file must be byte-identical. A run whose
workers the kernel kills while they write leaves no partial file under a final name.
"""

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from beam_harness import MULTI_PROCESS, dask_cluster, file_digests
from people_fixtures import degraded, portrait, side_by_side, write

pytest.importorskip("apache_beam")

REPO = Path(__file__).resolve().parents[1]
SIZE = 32  # conftest's `tiny_model`
FAST = ["--image_size", str(SIZE), "--identity_every", "0"]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Three people (Obama, Biden, the astronaut) over albums `family`, `space`, `scans`
    (photos two folders deep) and the root; 61 photos, a clip, two hazards."""
    root = tmp_path_factory.mktemp("library")
    group = side_by_side(portrait("obama3"), portrait("biden"))
    photos = {
        "family/obama.jpg": portrait("obama"),
        "family/obama2.jpg": portrait("obama2"),
        "family/biden.jpg": portrait("biden"),
        "family/group.png": group,
        "space/astronaut.png": portrait("astronaut"),
        "loose_obama_old.png": degraded(portrait("obama2"), 3, seed=90),
        "loose_biden_old.png": degraded(portrait("biden"), 3, seed=91),
        "noface.png": np.full((64, 64, 3), 120, np.uint8),
    }
    for seed in range(4):
        for name in ("obama", "obama2", "obama3", "biden"):
            photos[f"family/{name}_old{seed}.png"] = degraded(portrait(name), 3, seed=seed)
    for seed in range(2):
        photos[f"family/group_old{seed}.png"] = degraded(group, 3, seed=10 + seed)
        photos[f"scans/1950/group_{seed}.png"] = degraded(group, 4, seed=20 + seed)
    for seed in range(8):
        image = portrait("astronaut")
        photos[f"space/astronaut_old{seed}.png"] = degraded(image, 4, seed=30 + seed)
        flipped = np.ascontiguousarray(image[:, ::-1])
        photos[f"space/flipped_old{seed}.png"] = degraded(flipped, 4, seed=40 + seed)
    for seed in range(6):
        for name in ("obama3", "biden"):
            photos[f"scans/1950/{name}_{seed}.png"] = degraded(portrait(name), 4, seed=50 + seed)
    write(root, photos)
    (root / "family" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a photo")
    from gfrnet_tf.video import synthetic as clips

    frames = (clips.degraded_frame(t, 160, 128) for t in range(6))
    clips.write_clip(root / "space" / "clip.mp4", frames, 160, 128, audio=False)
    assert len(photos) >= 61
    return root


def _restore(model, root, out, *extra, preexec_fn=None, env=None):
    """`gfrnet-restore` in a new process: (exit status, stdout, stderr)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gfrnet_tf.apps.restore",
            f"--model={model}",
            f"--input={root}",
            f"--output={out}",
            *FAST,
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=preexec_fn,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith(("error:", "failed:"))]


@pytest.fixture(scope="module")
def one_machine(library, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_machine")
    status, stdout, stderr = _restore(tiny_model[1], library, out)
    assert status == 1, stderr  # the file that is no image
    return out, stdout, stderr


def _summary(stdout):
    return [line for line in stdout.splitlines() if "file(s)" in line][-1]


@pytest.mark.slow
def test_the_one_machine_reference_restores_faces_and_reports_every_file(library, one_machine):
    out, _, stderr = one_machine
    rows = (out / "faces.csv").read_text().splitlines()
    assert "family/broken.jpg,-1,,,,,skipped: not an image file" in "\n".join(rows)
    assert any(row.startswith("noface.png,-1,") for row in rows)
    assert sum(",restored," in row for row in rows) >= 10
    assert any(row.startswith("family/group_old0.png,1,") for row in rows)  # two faces
    assert (out / "space" / "clip_restored.mp4").exists()
    assert _error_lines(stderr) == [
        f"error: {library / 'family' / 'broken.jpg'}: not an image file (unrecognised format)",
        "failed: bad_file 1",
    ]


@pytest.mark.slow
def test_direct_runner_on_two_processes_writes_the_same_bytes(
    library, tiny_model, one_machine, tmp_path
):
    out = tmp_path / "direct"
    status, stdout, stderr = _restore(
        tiny_model[1], library, out, "--runner", "DirectRunner", *MULTI_PROCESS
    )
    reference, reference_stdout, reference_stderr = one_machine
    assert status == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert _error_lines(stderr) == _error_lines(reference_stderr)  # a bad photo is a row
    assert _summary(stdout) == _summary(reference_stdout)
    assert file_digests(out) == file_digests(reference)


@pytest.mark.slow
def test_dask_runner_on_two_workers_writes_the_same_bytes(
    library, tiny_model, one_machine, tmp_path
):
    out = tmp_path / "dask"
    with dask_cluster() as runner_args:
        status, stdout, stderr = _restore(tiny_model[1], library, out, *runner_args)
    reference, reference_stdout, _ = one_machine
    assert status == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert _summary(stdout) == _summary(reference_stdout)
    assert file_digests(out) == file_digests(reference)


def _killed_when_writing_past(limit):
    """For `preexec_fn`: a process (and its worker processes) that writes past `limit`
    bytes into one file is killed by the kernel (SIGXFSZ) in the middle of that write."""

    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


@pytest.mark.slow
def test_workers_killed_while_writing_leave_no_partial_file_under_a_final_name(
    library, tiny_model, one_machine, tmp_path
):
    reference = file_digests(one_machine[0])
    sizes = sorted(p.stat().st_size for p in one_machine[0].rglob("*_restored.png"))
    limit = sizes[0] - 1  # the first whole photo a worker writes kills it
    # Python ignores SIGXFSZ (a write past the limit would fail instead): the workers
    # take the kernel's default, death, from a sitecustomize module.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    )
    out = tmp_path / "killed"
    status, _, stderr = _restore(
        tiny_model[1],
        library,
        out,
        "--runner",
        "DirectRunner",
        *MULTI_PROCESS,
        preexec_fn=_killed_when_writing_past(limit),
        env={"PYTHONPATH": f"{site}{os.pathsep}{REPO}"},
    )
    assert status == 1 and "Traceback" not in stderr, stderr[-3000:]
    (line,) = [line for line in _error_lines(stderr) if line.startswith(f"error: {out}:")]
    assert line.startswith(f"error: {out}: the pipeline failed: ")
    assert "exited with return code 153" in line  # 128 + SIGXFSZ: killed, as asked
    left = file_digests(out)
    partial = {name for name in left if Path(name).name.startswith(".")}
    assert partial and all(name.endswith(".tmp") for name in partial)  # killed mid-write
    final = {name: digest for name, digest in left.items() if name not in partial}
    assert final and all(reference[name] == digest for name, digest in final.items())
    assert "faces.csv" not in final  # the report marks a finished run
