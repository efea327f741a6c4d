"""`gfrnet-restore --runner`: a library restored on Beam writes the one-machine command's bytes.

One generated library (61 photos of three people in four albums, degraded copies, two-person
photos, a clip, a photo without a face and a file that is no image) is restored by the
one-machine command, by the DirectRunner over two worker processes and by Beam's Dask
runner on a two-worker cluster; every output file must be byte-identical. A run whose
workers the kernel kills while they write leaves no partial file under a final name.
"""

import csv
import os
import resource
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from people_fixtures import degraded, portrait, side_by_side, write
from support import MULTI_PROCESS, ROOT, dask_cluster, run_checkout, tree_hashes
from test_library_cli import _restore as restore_command

pytest.importorskip("apache_beam")

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
        "scans/astronaut_old.png": degraded(portrait("astronaut"), 3, seed=92),
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
    for seed in range(8):
        for name in ("obama3", "biden"):
            photos[f"scans/1950/{name}_{seed}.png"] = degraded(portrait(name), 4, seed=50 + seed)
    write(root, photos)
    (root / "family" / "broken.jpg").write_bytes(b"a text file named like a photo")
    from gfrnet_tf.video import synthetic as clips

    frames = (clips.degraded_frame(t, 160, 128) for t in range(6))
    clips.write_clip(root / "space" / "clip.mp4", frames, 160, 128, audio=False)
    assert len(photos) >= 61
    return root


def _restore(model, root, out, *extra):
    """`gfrnet-restore` in a new process, never a traceback: (status, stdout, stderr)."""
    return restore_command(model, root, out, *FAST, *extra)


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith(("error:", "failed:"))]


@pytest.fixture(scope="module")
def one_machine(library, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_machine")
    status, stdout, stderr = _restore(tiny_model[1], library, out)
    assert status == 1, stderr  # the file that is no image
    return out, stdout, stderr


def _summary(stdout):
    """The command's last line without the output folder's name."""
    return [line for line in stdout.splitlines() if "file(s)" in line][-1].split("; report")[0]


@pytest.mark.slow
def test_the_one_machine_reference_restores_faces_and_reports_every_file(library, one_machine):
    out, _, stderr = one_machine
    rows = {(r["photo"], r["face"]): r for r in csv.DictReader((out / "faces.csv").open())}
    assert rows[("family/broken.jpg", "-1")]["action"] == (
        "skipped: not an image file (unrecognised format)"
    )
    assert rows[("noface.png", "-1")]["action"].startswith("skipped: no face")
    assert ("family/group_old0.png", "1") in rows  # two people in one photo
    assert sum(r["action"] == "restored" for r in rows.values()) >= 10
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
    assert status == 1
    assert _error_lines(stderr) == _error_lines(reference_stderr)  # a bad photo is a row
    assert _summary(stdout) == _summary(reference_stdout)
    assert tree_hashes(out) == tree_hashes(reference)


@pytest.mark.slow
def test_dask_runner_on_two_workers_writes_the_same_bytes(
    library, tiny_model, one_machine, tmp_path
):
    out = tmp_path / "dask"
    with dask_cluster() as runner_args:
        # Dask spreads work by the listing's partitions (Reshuffle is no step there).
        status, stdout, stderr = _restore(
            tiny_model[1], library, out, *runner_args, "--dask_npartitions=4"
        )
    reference, reference_stdout, _ = one_machine
    assert status == 1
    assert _summary(stdout) == _summary(reference_stdout)
    assert tree_hashes(out) == tree_hashes(reference)


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
    # One album (people are found per album, so its files are the whole library's).
    album = tmp_path / "library"
    shutil.copytree(library / "space", album / "space")
    reference = tree_hashes(one_machine[0])
    sizes = sorted(p.stat().st_size for p in (one_machine[0] / "space").glob("*_restored.png"))
    limit = sizes[0] - 1  # the first whole photo a worker writes kills it
    # Python ignores SIGXFSZ (a write past the limit would fail instead): the workers
    # take the kernel's default, death, from a sitecustomize module.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    )
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "gfrnet_tf.apps.restore", f"--model={tiny_model[1]}"]
    command += [f"--input={album}", f"--output={out}", *FAST, "--runner=DirectRunner"]
    done = run_checkout(
        *command,
        *MULTI_PROCESS,
        timeout=900,
        preexec_fn=_killed_when_writing_past(limit),
        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"},
    )
    status, stderr = done.returncode, done.stderr
    assert status == 1 and "Traceback" not in stderr, stderr[-3000:]
    (line,) = [line for line in _error_lines(stderr) if line.startswith(f"error: {out}:")]
    assert line.startswith(f"error: {out}: the pipeline failed: ")
    assert "exited with return code 153" in line  # 128 + SIGXFSZ: killed, as asked
    from gfrnet_tf.io.atomic import PARTIAL

    left = tree_hashes(out)
    partial = {name for name in left if Path(name).name.startswith(".")}
    assert partial and all(PARTIAL in name for name in partial)  # killed mid-write
    final = {name: digest for name, digest in left.items() if name not in partial}
    assert final and all(reference[name] == digest for name, digest in final.items())
    assert "faces.csv" not in final  # the report marks a finished run


def _parse(argv):
    """`gfrnet-restore`'s command line as its `make_run` reads it."""
    from gfrnet_tf.apps import archive, common, restore  # noqa: F401  (the command's flags)

    return common.parse_flags(argv, known_only=archive.runner_given(argv))


def test_with_runner_unknown_flags_go_to_beam_and_a_stray_word_is_refused(capsys):
    from absl import flags

    from gfrnet_tf.apps import archive

    argv = ["gfrnet-restore", "--model=m", "--input=i", "--output=o", "--runner", "DirectRunner"]
    beam_args = ["--direct_num_workers", "2", "--dask_client_address=tcp://127.0.0.1:1"]
    try:
        assert _parse([*argv, *beam_args]) == ["gfrnet-restore", *beam_args]
        assert archive.RUNNER.value == "DirectRunner"
        for refused, line in [
            ([*argv, *beam_args, "x"], "error: command line: unexpected argument 'x'"),
            (argv[:4] + beam_args, "Unknown command line flag 'direct_num_workers'"),
        ]:
            flags.FLAGS.unparse_flags()
            with pytest.raises(SystemExit):
                _parse(refused)
            assert line in capsys.readouterr().err
    finally:
        flags.FLAGS.unparse_flags()


def test_what_the_pipeline_cannot_do_is_one_line_before_anything_runs(monkeypatch):
    from absl import flags

    from gfrnet_tf.apps import archive, restore  # noqa: F401  (defines the command's flags)
    from gfrnet_tf.errors import BadConfigError, MissingDependencyError

    _parse(["gfrnet-restore", "--model=m", "--input=i", "--output=o", "--runner=x"])
    try:
        with pytest.raises(BadConfigError, match="--aligned crops run on one machine"):
            archive.check_flags(aligned=True)
        monkeypatch.setitem(sys.modules, "apache_beam", None)
        with pytest.raises(MissingDependencyError, match=r'pip install "gfrnet_tf\[beam\]"'):
            archive.restore_on_beam(*[None] * 7, [], lambda path, problem: None, "float32")
    finally:
        flags.FLAGS.unparse_flags()


def test_a_failed_run_names_the_workers_error_not_its_traceback():
    from gfrnet_tf.pipelines.runner import failure_line

    worker = RuntimeError(
        "Traceback (most recent call last):\n  File 'x.py', line 1\n"
        "OSError: [Errno 28] No space left on device\n\nDuring handling ...\n"
        "gfrnet_tf.restoration.outputs.OutputFolderError: OUT/a_restored.png: cannot be "
        "written (No space left on device) [while running 'Finish']"
    )
    assert failure_line(worker) == (
        "OUT/a_restored.png: cannot be written (No space left on device) [while running 'Finish']"
    )
    assert failure_line(RuntimeError("Traceback ...\nvalue.Error: x\nKeyError: 'k'")) == (
        "KeyError: 'k'"
    )
    assert failure_line(ValueError("a plain message\nsecond line")) == "a plain message"


def test_contact_sheets_are_the_same_whatever_order_photos_finish_in():
    """A person's sheet shows their first faces by key, however workers split and order the
    photos (one machine adds them in photo order)."""
    from gfrnet_tf.people import Person
    from gfrnet_tf.restoration.batches import THUMBNAIL_PX, FacePicture, PhotoResult
    from gfrnet_tf.restoration.report import SHEET_FACES, ContactSheets

    rng = np.random.default_rng(0)

    def picture(i):
        before, after = rng.integers(0, 256, (2, THUMBNAIL_PX, THUMBNAIL_PX, 3), dtype=np.uint8)
        return FacePicture("ann", (f"album/{i:03d}.jpg", 0), before, after)

    results = [PhotoResult(f"album/{i:03d}.jpg", (), (picture(i),)) for i in range(40)]
    in_order = ContactSheets({})
    for result in results:
        in_order.add(result)
    shuffled = [results[i] for i in rng.permutation(len(results))]
    parts = [ContactSheets({}) for _ in range(3)]
    for i, result in enumerate(shuffled):
        parts[i % 3].add(result)
    merged = parts[2]
    merged.merge(parts[0])
    merged.merge(parts[1])
    person = Person("ann", ())
    assert merged.counts == in_order.counts == {"ann": 40}
    assert [p.key for p in merged.pictures["ann"]] == [(r.photo, 0) for r in results[:SHEET_FACES]]
    assert [p.key for p in merged.pictures["ann"]] == [p.key for p in in_order.pictures["ann"]]
    assert merged.sheet(person).tobytes() == in_order.sheet(person).tobytes()
