"""gfrnet-prepare on a small real-photo collection: guides, rejections, splits, shards."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data.records import parse_pair, validate_shard
from gfrnet_tf.io.paths import safe_name
from pipelines import identity as identity_lib
from pipelines import prepare
from pipelines.photo import PreparedFace

sys.path.insert(0, str(Path(__file__).parent))
from prepare_fixtures import make_collection  # noqa: E402

# The fixture photos are 256 px with ~45 px faces: lower the size and sharpness filters.
SMALL = ["--min-face-size", "32", "--min-sharpness", "0", "--num-shards", "4"]
IN_PROCESS = ["--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return root, make_collection(root)


@pytest.fixture(scope="module")
def prepared(collection, tmp_path_factory):
    output = tmp_path_factory.mktemp("prepared")
    settings, beam_args, _ = prepare.parse_args(
        ["--input", str(collection[0]), "--output", str(output), "--synthetic-pose",
         "--export-guides", *SMALL, *IN_PROCESS])
    return output, prepare.run_pipeline(settings, beam_args)


def _records(output):
    records = []
    for shard in sorted(output.glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(shard)):
            sample = parse_pair(serialized, shard=str(shard))
            records.append({key: value.numpy() for key, value in sample.items()})
    return records


def test_rejections_counted_by_reason(prepared, collection):
    output, manifest = prepared
    junk = collection[1]["junk"]
    unreadable = sorted(f"junk/{n}" for n, outcome in junk.items() if outcome[0] == "rejected")
    faceless = sorted(f"junk/{n}" for n, outcome in junk.items() if outcome[0] == "converted")
    counts = manifest["counts"]
    assert counts["photos_read"] == 8 + len(junk)
    assert counts["rejected_no_face"] == 1 + len(faceless)  # + the cloud texture
    assert counts["rejected_bad_image"] == 1 + len(unreadable)  # + the truncated JPEG
    assert counts["rejected_empty_identity"] == 1
    reasons = dict(line.split("\t")[:2]
                   for line in (output / "rejected.tsv").read_text().splitlines())
    assert reasons == {"no_faces/clouds.png": "no_face", "no_faces/cut.jpg": "bad_image",
                       **{name: "bad_image" for name in unreadable},
                       **{name: "no_face" for name in faceless}}


def test_frontal_copy_is_the_guide_and_output_parses(prepared):
    output, manifest = prepared
    records = _records(output)
    astronaut = [r for r in records if r["identity"] == b"astronaut"]
    assert {r["guide_file"] for r in astronaut} == {b"astronaut/frontal.png"}
    assert sorted(r["target_file"] for r in astronaut) == [
        b"astronaut/recoloured_tilted.png", b"astronaut/scaled_tilted.png",
        b"astronaut/tilted_left.png", b"astronaut/tilted_right.jpg"]
    for record in records:
        assert record["target"].shape == (256, 256, 3)
        inner = record["landmarks"][17:]
        assert ((inner > 0) & (inner < 256)).all()
    # The lone photo became a synthetic-pose pair with itself as guide.
    solo, = [r for r in records if r["identity"] == b"solo"]
    assert solo["guide_file"] == solo["target_file"] == b"solo/only.jpg"
    np.testing.assert_array_equal(solo["guide"], solo["target"])
    for shard, count in manifest["shards"].items():
        assert validate_shard(output / shard) == count  # the train command's start-up check
    total = sum(v for k, v in manifest["counts"].items() if k.startswith("pairs_"))
    assert total == len(records) == sum(manifest["shards"].values()) == 5


def test_guides_exported_under_safe_names(prepared):
    output, _ = prepared
    exported = sorted(p.relative_to(output / "guides").as_posix()
                      for p in (output / "guides").rglob("*.json"))
    assert [p.split("/")[1] for p in exported] == ["astronaut.json", "solo.json"]
    details = json.loads((output / "guides" / exported[0]).read_text())
    assert details["photo"] == "astronaut/frontal.png" and len(details["landmarks"]) == 68


def test_rerun_in_a_new_process_writes_identical_shards(prepared, collection, tmp_path):
    output, manifest = prepared
    unused = next(f"train-{i:05d}-of-00004.tfrecord" for i in range(4)
                  if f"train-{i:05d}-of-00004.tfrecord" not in manifest["shards"])
    (tmp_path / unused).write_bytes(b"an earlier run's shard")
    (tmp_path / "notes.txt").write_text("not ours")
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.prepare", "--input", str(collection[0]),
         "--output", str(tmp_path), "--synthetic-pose", *SMALL, *IN_PROCESS],
        capture_output=True, text=True, cwd=Path(__file__).parents[1],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    # Unreadable files are failures: summary printed, exit status 1.
    assert completed.returncode == 1, completed.stderr[-2000:]
    counts = manifest["counts"]
    assert (f"rejected: bad_image {counts['rejected_bad_image']}, empty_identity 1, "
            f"no_face {counts['rejected_no_face']}") in completed.stdout
    rerun = json.loads((tmp_path / "manifest.json").read_text())
    assert rerun["shards"] == manifest["shards"]
    assert rerun["stale_shards_removed"] == [unused] and not (tmp_path / unused).exists()
    assert (tmp_path / "notes.txt").exists()

    def digests(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in folder.glob("*.tfrecord")}

    assert digests(tmp_path) == digests(output) and digests(output)


def _face(key, yaw=0.0, roll=0.0, ear=0.3, sharpness=100.0, identity="a"):
    return PreparedFace(key=key, identity=identity, png=b"", landmarks=np.zeros((68, 2)),
                        confidence=1.0, sharpness=sharpness, yaw=yaw, roll=roll,
                        eye_aspect_ratio=ear)


def test_guide_needs_open_eyes_and_targets_are_capped():
    faces = [_face("a/closed", ear=0.1), _face("a/turned", yaw=30),
             _face("a/tilted", roll=-12), _face("a/slight", yaw=4, sharpness=50),
             _face("a/sharp", yaw=-25, sharpness=900)]
    options = identity_lib.PairOptions(max_per_identity=3)
    pairs, reason = identity_lib.make_pairs(faces, options)
    assert reason is None
    assert {guide.key for _, guide in pairs} == {"a/slight"}
    assert [target.key for target, _ in pairs] == ["a/sharp", "a/closed"]  # sharpest first
    assert identity_lib.make_pairs([_face("a/x", ear=0.1), _face("a/y", ear=0.15)],
                                   options) == ([], "no_open_eyes_guide")
    assert identity_lib.make_pairs([_face("a/x")], options) == ([], "single_photo_identity")


def test_split_is_a_function_of_the_identity():
    names = [f"n{i:05d}" for i in range(4000)]
    splits = [identity_lib.split_of(n, 0.1, 0.2) for n in names]
    assert splits == [identity_lib.split_of(n, 0.1, 0.2) for n in names]
    fractions = {s: splits.count(s) / len(names) for s in identity_lib.SPLITS}
    assert abs(fractions["val"] - 0.1) < 0.02 and abs(fractions["test"] - 0.2) < 0.02
    shards = {identity_lib.shard_of(n, 7) for n in names}
    assert shards == set(range(7))


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "..", ".", "", "a\x00b",
                                  "a/b", "x" * 300, "Zoë Saldaña"])
def test_identity_names_cannot_escape_the_output(tmp_path, name):
    safe = safe_name(name)
    assert safe and not safe.startswith(".") and "/" not in safe and "\x00" not in safe
    assert len(safe) <= 90
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()


def test_safe_names_keep_distinct_names_apart():
    assert safe_name("alice_smith") == "alice_smith"
    assert len({safe_name(n) for n in ["a/b", "a_b", "a b", "a\\b"]}) == 4


def test_missing_beam_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    status = prepare.main(["--input", str(tmp_path), "--output", str(tmp_path / "out")])
    assert status == 1
    error = capsys.readouterr().err.strip()
    assert error == "error: apache_beam: not installed: pip install gfrnet_tf[beam]"


def test_bad_flags_are_one_line(capsys, tmp_path):
    assert prepare.main(["--input", str(tmp_path / "nope"), "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith("nope: --input is not a folder")
    assert prepare.main(["--input", str(tmp_path), "--output", str(tmp_path),
                         "--max-per-identity", "1"]) == 1
    assert "--max-per-identity: must be at least 2" in capsys.readouterr().err


def test_photo_filters_and_all_faces():
    import cv2

    from gfrnet_tf.faces import DlibLandmarks
    from gfrnet_tf.sample import load_sample
    from pipelines.photo import FaceOptions, RejectedFaceError, prepare_image

    image, _ = load_sample()
    landmarks = DlibLandmarks()
    kept, = prepare_image(image, "s/face.png", "s", landmarks)
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
        faces = [_face(f"a/{i:02d}", yaw=rng.uniform(-40, 40), roll=rng.uniform(-20, 20),
                       ear=rng.uniform(0.1, 0.35), sharpness=float(rng.integers(1, 6)))
                 for i in range(rng.integers(1, 12))]
        chunks = np.array_split(rng.permutation(len(faces)), 3)
        partial = [identity_lib.keep_candidates([faces[i] for i in chunk], options)
                   for chunk in chunks]
        merged = identity_lib.keep_candidates([f for kept in partial for f in kept], options)
        assert len(merged) <= options.max_per_identity + 1
        assert identity_lib.make_pairs(merged, options) == identity_lib.make_pairs(
            faces, options), trial


def test_landmark_file_for_another_photo_is_rejected(tmp_path):
    from gfrnet_tf.faces import FileLandmarks
    from gfrnet_tf.sample import load_sample
    from pipelines.photo import RejectedFaceError, prepare_image

    image, landmarks = load_sample()
    header = "image," + ",".join(f"x{i},y{i}" for i in range(68))
    rows = [f"{name}," + ",".join(f"{v:.2f}" for v in points.ravel())
            for name, points in [("s/right.png", landmarks), ("s/wrong.png", landmarks + 200)]]
    (tmp_path / "points.csv").write_text("\n".join([header, *rows]) + "\n")
    source = FileLandmarks(tmp_path / "points.csv")
    kept, = prepare_image(image, "s/right.png", "s", source)
    # The sample's points, re-cropped with the margin: same face, moved and scaled.
    assert np.corrcoef(kept.landmarks[:, 0], landmarks[:, 0])[0, 1] > 0.999
    with pytest.raises(RejectedFaceError) as caught:
        prepare_image(image, "s/wrong.png", "s", source)
    assert caught.value.reason == "landmarks_outside_crop"
