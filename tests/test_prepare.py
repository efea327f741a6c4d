"""gfrnet-prepare on a small real-photo collection with the hazards of a scraped one.

One in-process DirectRunner run (module fixture) is checked for guides, rejections, splits,
the manifest and the input left untouched; a second run in a new process with another
batch size, and a third on Dask workers (slow), must write the same bytes.
"""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.apps import prepare as prepare_app
from gfrnet_tf.data import PreparedDataset
from gfrnet_tf.data.parsing import parse_pair
from gfrnet_tf.data.records import SCHEMA_VERSION
from gfrnet_tf.data.validation import validate_shard
from gfrnet_tf.errors import BadImageError
from gfrnet_tf.io.paths import safe_name
from gfrnet_tf.pipelines import identity as identity_lib
from gfrnet_tf.pipelines import listing
from gfrnet_tf.pipelines.identity import SPLITS
from gfrnet_tf.pipelines.photo import PreparedFace
from prepare_fixtures import MAX_PHOTO_BYTES, add_hostile, make_collection, tree_state
from support import run_module

# The fixture photos are 256 px with ~45 px faces: lower the size and sharpness filters.
SMALL = [
    "--min-face-size",
    "32",
    "--min-sharpness",
    "0",
    "--num-shards",
    "4",
    "--max-photo-bytes",
    str(MAX_PHOTO_BYTES),
    "--synthetic-pose",
    "--export-guides",
]
IN_PROCESS = ["--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    listing_ = make_collection(root)
    accepted, rejected = add_hostile(root)
    return root, listing_, accepted, rejected, tree_state(root)


def _prepare(collection, output, *extra):
    settings, beam_args, _ = prepare_app.parse_args(
        ["--input", str(collection[0]), "--output", str(output), *SMALL, *extra]
    )
    return prepare_app.run_pipeline(settings, beam_args)


@pytest.fixture(scope="module")
def prepared(collection, tmp_path_factory):
    output = tmp_path_factory.mktemp("prepared")
    return output, _prepare(collection, output, "--photos-per-batch", "16", *IN_PROCESS)


@pytest.fixture(scope="module")
def rerun(prepared, collection, tmp_path_factory):
    """The same flags in a new process, with photos one per element instead of 16, into a
    folder holding an earlier run's shard and a file of the user's."""
    output = tmp_path_factory.mktemp("rerun")
    unused = next(
        f"train-{i:05d}-of-00004.tfrecord"
        for i in range(4)
        if f"train-{i:05d}-of-00004.tfrecord" not in prepared[1]["shards"]
    )
    (output / unused).write_bytes(b"an earlier run's shard")
    (output / "notes.txt").write_text("not ours")
    completed = run_module(
        "gfrnet_tf.apps.prepare",
        "--input",
        collection[0],
        "--output",
        output,
        *SMALL,
        "--photos-per-batch",
        "1",
        *IN_PROCESS,
    )
    return output, completed, unused


def _records(output):
    records = []
    for shard in sorted(output.glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(shard)):
            sample = parse_pair(serialized, shard=str(shard))
            records.append({key: value.numpy() for key, value in sample.items()})
    return records


def _files(folder):
    """`{relative path: sha256}` of every file under `folder` (hidden ones included)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rejected(output):
    return dict(
        (key, (reason, problem))
        for key, reason, problem in (
            line.split("\t") for line in (output / "rejected.tsv").read_text().splitlines()
        )
    )


def test_rejections_one_row_each_by_reason(prepared, collection):
    output, manifest = prepared
    junk, hostile = collection[1]["junk"], collection[3]
    unreadable = sorted(f"junk/{n}" for n, outcome in junk.items() if outcome[0] == "rejected")
    faceless = sorted(f"junk/{n}" for n, outcome in junk.items() if outcome[0] == "converted")
    counts = manifest["counts"]
    photos = 8 + len(junk) + len(collection[2]) + len(hostile)
    assert counts["photos_read"] == photos
    assert counts["rejected_no_face"] == 1 + len(faceless)  # + the cloud texture
    # + the truncated JPEG; the FIFO, socket, symlink loop, empty and huge files.
    assert counts["rejected_bad_image"] == 1 + len(unreadable) + len(hostile)
    assert counts["rejected_empty_identity"] == 1
    rows = _rejected(output)
    assert {key: reason for key, (reason, _) in rows.items()} == {
        "no_faces/clouds.png": "no_face",
        "no_faces/cut.jpg": "bad_image",
        **{name: "bad_image" for name in unreadable + list(hostile)},
        **{name: "no_face" for name in faceless},
    }
    for key, words in hostile.items():
        assert words in rows[key][1], (key, rows[key])
    lines = (output / "rejected.tsv").read_text().splitlines()
    assert lines == sorted(lines) and len(lines) == len(rows)


def test_hostile_names_are_prepared_under_escaped_names(prepared, collection):
    records = _records(prepared[0])
    targets = {r["target_file"].decode() for r in records} | {
        r["guide_file"].decode() for r in records
    }
    assert collection[2] <= targets  # caf\xe9/..., hostile/\xff\xfe.png, the 244-byte name
    identities = {r["identity"].decode() for r in records}
    assert {"caf\\xe9", "hostile"} <= identities


def test_frontal_copy_is_the_guide_and_output_parses(prepared):
    output, manifest = prepared
    records = _records(output)
    astronaut = [r for r in records if r["identity"] == b"astronaut"]
    assert {r["guide_file"] for r in astronaut} == {b"astronaut/frontal.png"}
    assert sorted(r["target_file"] for r in astronaut) == [
        b"astronaut/recoloured_tilted.png",
        b"astronaut/scaled_tilted.png",
        b"astronaut/tilted_left.png",
        b"astronaut/tilted_right.jpg",
    ]
    for record in records:
        assert record["target"].shape == (256, 256, 3)
        inner = record["landmarks"][17:]
        assert ((inner > 0) & (inner < 256)).all()
    # The lone photo became a synthetic-pose pair with itself as guide.
    (solo,) = [r for r in records if r["identity"] == b"solo"]
    assert solo["guide_file"] == solo["target_file"] == b"solo/only.jpg"
    np.testing.assert_array_equal(solo["guide"], solo["target"])
    assert len(records) == 4 + 1 + 1 + 1  # astronaut, solo, caf\xe9, hostile


def test_manifest_is_the_dataset_handle(prepared):
    output, manifest = prepared
    assert manifest == json.loads((output / "manifest.json").read_text())
    assert (manifest["format"], manifest["schema_version"]) == (
        "gfrnet_tf.prepared",
        SCHEMA_VERSION,
    )
    assert manifest["image_size"] == 256 and manifest["synthetic_pose"] is True
    on_disk = sorted(p.name for p in output.glob("*.tfrecord"))
    listed = sorted(name for split in manifest["splits"].values() for name in split["shards"])
    assert listed == on_disk
    for split, entry in manifest["splits"].items():
        # The train command's start-up check counts each shard's records independently.
        assert entry["records"] == sum(validate_shard(output / name) for name in entry["shards"])
        assert all(name.startswith(f"{split}-") for name in entry["shards"])
    assert sum(e["records"] for e in manifest["splits"].values()) == len(_records(output))
    assert "output" not in manifest["configuration"]  # the same dataset wherever it is
    dataset = PreparedDataset(output)  # what `gfrnet-train --data DIR` opens
    assert (dataset.splits, dataset.image_size, dataset.synthetic_pose) == (SPLITS, 256, True)
    for split in SPLITS:
        assert dataset.records(split) == manifest["splits"][split]["records"]
        if dataset.records(split):
            assert dataset.files(split) == [
                str(output / name) for name in manifest["splits"][split]["shards"]
            ]


def test_guides_exported_under_safe_names(prepared):
    output, _ = prepared
    exported = sorted(
        p.relative_to(output / "guides").as_posix() for p in (output / "guides").rglob("*.json")
    )
    assert sorted(p.split("/")[1] for p in exported) == sorted(
        f"{safe_name(n)}.json" for n in ["astronaut", "solo", "caf\\xe9", "hostile"]
    )
    details = {json.loads((output / "guides" / p).read_text())["identity"]: p for p in exported}
    astronaut = json.loads((output / "guides" / details["astronaut"]).read_text())
    assert astronaut["photo"] == "astronaut/frontal.png" and len(astronaut["landmarks"]) == 68


def test_rerun_with_other_batches_is_byte_identical(prepared, rerun):
    output, manifest = prepared
    rerun_output, completed, unused = rerun
    # Unreadable files are failures: summary printed, exit status 1, no traceback.
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    counts = manifest["counts"]
    assert (
        f"rejected: bad_image {counts['rejected_bad_image']}, empty_identity 1, "
        f"no_face {counts['rejected_no_face']}"
    ) in completed.stdout
    assert not (rerun_output / unused).exists()  # the earlier run's shard is gone
    assert (rerun_output / "notes.txt").read_text() == "not ours"
    (rerun_output / "notes.txt").unlink()
    files = _files(output)
    assert files == _files(rerun_output)
    assert {"manifest.json", "rejected.tsv"} <= set(files) and len(files) > 10


def test_input_untouched_and_no_partial_output(prepared, rerun, collection):
    assert tree_state(collection[0]) == collection[4]
    for output in (prepared[0], rerun[0]):
        names = [p.name for p in output.rglob("*")]
        assert not [n for n in names if n.startswith(".") or "tmp" in n or "beam-temp" in n]


def test_output_inside_input_is_refused(collection, capsys):
    root, before = collection[0], collection[4]
    for output in (root / "astronaut" / "prepared", root, root / "new"):
        assert prepare_app.main(["--input", str(root), "--output", str(output), *SMALL]) == 1
        error = capsys.readouterr().err
        assert error == (
            f"error: {output}: --output is inside --input {root}: its files "
            "would be read back as photos; choose a folder outside the input\n"
        )
    assert tree_state(root) == before


def test_unwritable_output_is_one_line(collection, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    for output in (tmp_path / "a_file", tmp_path / "a_file" / "below"):
        assert (
            prepare_app.main(
                ["--input", str(collection[0]), "--output", str(output), *SMALL, *IN_PROCESS]
            )
            == 1
        )
        error = capsys.readouterr().err
        assert error.startswith(f"error: {output}: cannot write the output folder (")
        assert error.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_read_only_output_is_one_line(collection, read_only_folder, capsys):
    assert (
        prepare_app.main(
            ["--input", str(collection[0]), "--output", str(read_only_folder), *SMALL, *IN_PROCESS]
        )
        == 1
    )
    error = capsys.readouterr().err
    assert error.startswith(f"error: {read_only_folder}: cannot write the output folder (")
    assert error.count("\n") == 1
    assert list(read_only_folder.iterdir()) == []


def test_a_file_that_changes_size_while_read_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"12345")
    real_fstat = os.fstat

    class Grown:
        def __init__(self, info):
            self.st_mode, self.st_size = info.st_mode, info.st_size + 10

    monkeypatch.setattr(listing.os, "fstat", lambda fd: Grown(real_fstat(fd)))
    with pytest.raises(BadImageError, match="states 15 bytes but 5 were read"):
        listing.read_photo(os.fsencode(path), "a/photo.jpg", 100)
    monkeypatch.undo()
    assert listing.read_photo(os.fsencode(path), "a/photo.jpg", 100) == b"12345"
    with pytest.raises(BadImageError, match="more than 4 bytes"):
        listing.read_photo(os.fsencode(path), "a/photo.jpg", 4)


@pytest.mark.slow
def test_dask_runner_on_two_workers_writes_the_same_bytes(prepared, collection, tmp_path):
    distributed = pytest.importorskip("distributed")
    output = tmp_path / "dask"
    with distributed.LocalCluster(
        host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        manifest = _prepare(
            collection,
            output,
            "--photos-per-batch",
            "5",
            "--runner",
            "apache_beam.runners.dask.dask_runner.DaskRunner",
            "--dask_client_address",
            cluster.scheduler_address,
        )
    assert manifest == prepared[1]
    assert _files(output) == _files(prepared[0])


def _face(key, yaw=0.0, roll=0.0, ear=0.3, sharpness=100.0, identity="a"):
    return PreparedFace(
        key=key,
        identity=identity,
        png=b"",
        landmarks=np.zeros((68, 2)),
        confidence=1.0,
        sharpness=sharpness,
        yaw=yaw,
        roll=roll,
        eye_aspect_ratio=ear,
    )


def test_guide_needs_open_eyes_and_targets_are_capped():
    faces = [
        _face("a/closed", ear=0.1),
        _face("a/turned", yaw=30),
        _face("a/tilted", roll=-12),
        _face("a/slight", yaw=4, sharpness=50),
        _face("a/sharp", yaw=-25, sharpness=900),
    ]
    options = identity_lib.PairOptions(max_per_identity=3)
    pairs, reason = identity_lib.make_pairs(faces, options)
    assert reason is None
    assert {guide.key for _, guide in pairs} == {"a/slight"}
    assert [target.key for target, _ in pairs] == ["a/sharp", "a/closed"]  # sharpest first
    assert identity_lib.make_pairs([_face("a/x", ear=0.1), _face("a/y", ear=0.15)], options) == (
        [],
        "no_open_eyes_guide",
    )
    assert identity_lib.make_pairs([_face("a/x")], options) == ([], "single_photo_identity")


def test_split_is_a_function_of_the_identity():
    names = [f"n{i:05d}" for i in range(4000)]
    splits = [identity_lib.split_of(n, 0.1, 0.2) for n in names]
    assert splits == [identity_lib.split_of(n, 0.1, 0.2) for n in names]
    fractions = {s: splits.count(s) / len(names) for s in identity_lib.SPLITS}
    assert abs(fractions["val"] - 0.1) < 0.02 and abs(fractions["test"] - 0.2) < 0.02
    shards = {identity_lib.shard_of(n, 7) for n in names}
    assert shards == set(range(7))


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "..", ".", "", "a\x00b", "a/b", "x" * 300, "Zoë Saldaña"]
)
def test_identity_names_cannot_escape_the_output(tmp_path, name):
    safe = safe_name(name)
    assert safe and not safe.startswith(".") and "/" not in safe and "\x00" not in safe
    assert len(safe) <= 90
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()


def test_safe_names_keep_distinct_names_apart():
    assert safe_name("alice_smith") == "alice_smith"
    assert len({safe_name(n) for n in ["a/b", "a_b", "a b", "a\\b"]}) == 4


def test_missing_beam_is_one_line(hide_module, capsys, tmp_path):
    hide_module("apache_beam")
    status = prepare_app.main(["--input", str(tmp_path), "--output", str(tmp_path / "out")])
    assert status == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        'error: apache_beam: not installed: pip install "gfrnet_tf[beam]"'
        ' (in a checkout: pip install -e ".[beam]")'
    )


def test_bad_flags_are_one_line(capsys, tmp_path):
    assert prepare_app.main(["--input", str(tmp_path / "nope"), "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith("nope: --input is not a folder")
    assert (
        prepare_app.main(
            ["--input", str(tmp_path), "--output", str(tmp_path), "--max-per-identity", "1"]
        )
        == 1
    )
    assert "--max_per_identity: must be at least 2" in capsys.readouterr().err


def test_photo_filters_and_all_faces():
    import cv2

    from gfrnet_tf.faces import DlibLandmarks
    from gfrnet_tf.pipelines.photo import FaceOptions, RejectedFaceError, prepare_image
    from gfrnet_tf.sample import load_sample

    image, _ = load_sample()
    landmarks = DlibLandmarks()
    (kept,) = prepare_image(image, "s/face.png", "s", landmarks)
    assert kept.key == "s/face.png" and abs(kept.yaw) < 10 and kept.sharpness > 30
    small = cv2.resize(image, (80, 80), interpolation=cv2.INTER_AREA)
    with pytest.raises(RejectedFaceError, match="smaller than 64 px") as caught:
        prepare_image(small, "s/small.png", "s", landmarks)
    assert caught.value.reason == "face_too_small"
    with pytest.raises(RejectedFaceError) as caught:
        prepare_image(cv2.GaussianBlur(image, (0, 0), 3), "s/soft.png", "s", landmarks)
    assert caught.value.reason == "blurry"
    pair = np.concatenate([image, image[:, ::-1]], axis=1)
    both = prepare_image(pair, "s/two.png", "s", landmarks, FaceOptions(all_faces=True))
    assert sorted(face.key for face in both) == ["s/two.png#face0", "s/two.png#face1"]
    assert abs(both[0].yaw + both[1].yaw) < 3  # mirror images: opposite yaw


def test_candidates_reduce_without_changing_the_pairs():
    rng = np.random.default_rng(3)
    options = identity_lib.PairOptions(max_per_identity=3)
    for trial in range(200):
        faces = [
            _face(
                f"a/{i:02d}",
                yaw=rng.uniform(-40, 40),
                roll=rng.uniform(-20, 20),
                ear=rng.uniform(0.1, 0.35),
                sharpness=float(rng.integers(1, 6)),
            )
            for i in range(rng.integers(1, 12))
        ]
        chunks = np.array_split(rng.permutation(len(faces)), 3)
        partial = [
            identity_lib.keep_candidates([faces[i] for i in chunk], options) for chunk in chunks
        ]
        merged = identity_lib.keep_candidates([f for kept in partial for f in kept], options)
        assert len(merged) <= options.max_per_identity + 1
        assert identity_lib.make_pairs(merged, options) == identity_lib.make_pairs(
            faces, options
        ), trial


def test_landmark_file_for_another_photo_is_rejected(tmp_path):
    from gfrnet_tf.faces import FileLandmarks
    from gfrnet_tf.pipelines.photo import RejectedFaceError, prepare_image
    from gfrnet_tf.sample import load_sample

    image, landmarks = load_sample()
    header = "image," + ",".join(f"x{i},y{i}" for i in range(68))
    rows = [
        f"{name}," + ",".join(f"{v:.2f}" for v in points.ravel())
        for name, points in [("s/right.png", landmarks), ("s/wrong.png", landmarks + 200)]
    ]
    (tmp_path / "points.csv").write_text("\n".join([header, *rows]) + "\n")
    source = FileLandmarks(tmp_path / "points.csv")
    (kept,) = prepare_image(image, "s/right.png", "s", source)
    # The sample's points, re-cropped with the margin: same face, moved and scaled.
    assert np.corrcoef(kept.landmarks[:, 0], landmarks[:, 0])[0, 1] > 0.999
    with pytest.raises(RejectedFaceError) as caught:
        prepare_image(image, "s/wrong.png", "s", source)
    assert caught.value.reason == "landmarks_outside_crop"


def _file_size_limit(limit):
    """For `preexec_fn`: writes past `limit` bytes fail with EFBIG, as on a full disk."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_is_one_line_and_leaves_no_temp_files(collection, tmp_path):
    root = tmp_path / "photos"
    (root / "astronaut").mkdir(parents=True)
    for photo in (collection[0] / "astronaut").iterdir():
        (root / "astronaut" / photo.name).write_bytes(photo.read_bytes())
    before = tree_state(root)
    output = tmp_path / "out"
    completed = run_module(
        "gfrnet_tf.apps.prepare",
        "--input",
        root,
        "--output",
        output,
        *SMALL,
        *IN_PROCESS,
        preexec_fn=_file_size_limit(64 * 1024),  # a shard of 4 pairs is ~600 KB
    )
    assert completed.returncode == 1
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {output}: the pipeline failed: {errors[0].split(': ', 3)[3]}"]
    assert "File too large" in errors[0] and "Traceback" not in completed.stderr
    left = sorted(p.name for p in output.rglob("*"))
    assert "manifest.json" not in left
    assert not [n for n in left if n.startswith(".") or "tmp" in n or "beam-temp" in n], left
    assert tree_state(root) == before
