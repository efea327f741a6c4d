"""Whole-photo restoration: model backends, flow pictures, and gfrnet-restore on a folder."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from gfrnet_tf import ops
from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadImageError, BadModelFileError
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.export.tflite import convert_to_tflite
from gfrnet_tf.io import load_image, save_image
from gfrnet_tf.restoration.photos import PhotoRestorer
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.sample import load_sample
from gfrnet_tf.visualize import flow_to_rgb, image_grid
from support import SIZE, run_module


def test_flow_colouring_identity_is_white_and_translation_is_flat():
    identity = ops.identity_grid(16, 24).numpy()[0]
    np.testing.assert_array_equal(flow_to_rgb(identity), 255)
    shifted = identity + np.float32([2.0 / 23.0 * 3.0, 0.0])  # 3 px to the right everywhere
    colours = flow_to_rgb(shifted).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) == 1
    red, green, blue = colours[0].astype(int)
    assert red == 255 and green == blue == 0  # hue 0 = +x, fully saturated at the maximum


def test_image_grid_layout():
    a = np.zeros((4, 5, 3), np.uint8)
    b = np.full((4, 5, 3), 7, np.uint8)
    grid = image_grid([[a, b], [b, a]], gap=1)
    assert grid.shape == (9, 11, 3)
    np.testing.assert_array_equal(grid[:4, 6:], b)
    np.testing.assert_array_equal(grid[4], 255)
    with pytest.raises(ValueError, match="equally sized"):
        image_grid([[a, b[:3]]])


@pytest.fixture(scope="module")
def tiny_savedmodel(tiny_model, tmp_path_factory):
    """`tiny_model` exported in TF Serving's layout: `served/1/`."""
    return export_savedmodel(tiny_model[0], tmp_path_factory.mktemp("export") / "served", SIZE)


def _uint8_pair(seed):
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2))


def test_keras_savedmodel_and_tflite_backends_agree(tiny_model, tiny_savedmodel, tmp_path):
    model, path = tiny_model
    degraded, guide = _uint8_pair(0)
    keras_result = load_restorer(path)(degraded, guide)
    direct = model({"degraded": to_model_range(degraded), "guide": to_model_range(guide)})
    np.testing.assert_array_equal(keras_result.restored, to_uint8(direct["restored"]))
    np.testing.assert_allclose(keras_result.flow, direct["flow"], atol=1e-6)
    assert keras_result.restored.dtype == np.uint8 and keras_result.restored.shape == degraded.shape

    # TF Serving's layout: the model folder with numbered versions is accepted as well.
    served_restorer = load_restorer(tiny_savedmodel.parent)
    assert served_restorer.image_size == SIZE  # recorded at export; the signature is dynamic
    served = served_restorer(degraded, guide)
    np.testing.assert_allclose(served.flow, keras_result.flow, atol=1e-5)
    for name in ("restored", "warped_guide"):
        difference = np.abs(getattr(served, name).astype(int) - getattr(keras_result, name))
        assert difference.max() <= 1, name  # float rounding at .5 may differ by one level

    tflite = tmp_path / "tiny.tflite"
    tflite.write_bytes(convert_to_tflite(model, SIZE, "fp32"))
    on_device = load_restorer(tflite)
    assert on_device.image_size == SIZE
    lite = on_device(degraded, guide)  # batch of 2 through a batch-1 conversion
    np.testing.assert_allclose(lite.flow, keras_result.flow, atol=2e-4)
    for name in ("restored", "warped_guide"):
        difference = np.abs(getattr(lite, name).astype(int) - getattr(keras_result, name))
        assert difference.max() <= 1, name


@pytest.mark.parametrize("name", ["model.keras", "model.tflite"])
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"\x00" * 64])
def test_unusable_model_files_are_named(tmp_path, name, content):
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(BadModelFileError, match=name):
        load_restorer(bad)
    with pytest.raises(BadModelFileError, match="no such"):
        load_restorer(tmp_path / "absent.tflite")


def test_aligned_crops_need_no_detection(tiny_model):
    model, path = tiny_model
    photos = PhotoRestorer(load_restorer(path), SIZE, aligned=True)
    sample, _ = load_sample()
    photos.add_guide(sample, "guide.png", pose=False)  # one guide: no landmarks needed
    restored, (face,) = photos.restore(sample, "face.png")
    assert restored.shape == sample.shape
    assert face.degraded.shape == (SIZE, SIZE, 3) and face.guide.source == "guide.png"
    small = cv2.resize(sample, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    direct = model({"degraded": to_model_range(small[None]), "guide": to_model_range(small[None])})
    np.testing.assert_array_equal(face.result.restored, to_uint8(direct["restored"])[0])
    with pytest.raises(BadImageError, match="square"):
        photos.restore(sample[:200], "wide.png")
    # No size given: an aligned crop is used at its own size, the guide follows it.
    own_size = PhotoRestorer(load_restorer(path), None, aligned=True)
    own_size.add_guide(sample, "guide.png", pose=False)
    restored, (face,) = own_size.restore(small, "small.png")
    assert restored.shape == small.shape and face.guide.crop.shape == small.shape
    np.testing.assert_array_equal(face.result.restored, to_uint8(direct["restored"])[0])


def test_restore_folder_good_nonface_corrupt(tiny_savedmodel, tmp_path):
    """One output set for the face photo, one line per unreadable photo or bad guide, a
    `faces.csv` row for the photo without a face, exit status 1.

    From a SavedModel without `--image_size`: the recorded size must be used (at the
    default 256 the export would refuse every face), and its flow drawn (`--flow`). The
    two guides of the astronaut are joined into one person, named after the first.
    """
    model_path = tiny_savedmodel
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)  # MTCNN is faster
    save_image(photos / "astronaut.png", photo)
    smooth = cv2.resize(np.random.default_rng(0).integers(0, 256, (4, 4, 3), np.uint8), (96, 96))
    save_image(photos / "noface.png", smooth)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    guides = tmp_path / "guides"
    guides.mkdir()
    sample, _ = load_sample()
    save_image(guides / "frontal.png", sample)
    save_image(guides / "flipped.png", np.ascontiguousarray(sample[:, ::-1]))
    save_image(guides / "landscape.png", smooth)  # a guide without a face
    out = tmp_path / "out"
    done = run_module(
        "gfrnet_tf.apps.restore",
        f"--model={model_path}",
        f"--input={photos}",
        f"--guide={guides / 'flipped.png'}",
        f"--guide={guides / 'frontal.png'}",
        f"--guide={guides / 'landscape.png'}",
        f"--output={out}",
        "--flow",
        "--restore_all",  # the untrained model's face: restored even if less sharp
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, done.stderr
    for expected in ("photos/broken.jpg: ", "guides/landscape.png: no face"):
        assert sum(expected in line for line in errors) == 1, (expected, errors)
    assert "Traceback" not in done.stderr
    assert "failed: bad_file 1, guide 1" in done.stderr
    assert "noface.png: skipped: no face" in done.stdout
    # the person named after the first guide; the guide closest in pose, not the mirrored one
    assert "astronaut.png: face 0 at " in done.stdout
    assert "restored (flipped, guide guide:frontal.png face 0)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut_face0.png",
        "astronaut_face0_compare.png",
        "astronaut_face0_flow.png",
        "astronaut_restored.png",
        "faces.csv",
        "people",
        "people.json",
    ]
    restored = load_image(out / "astronaut_restored.png")
    assert restored.shape == photo.shape
    changed = np.any(restored != photo, axis=-1)
    rows, columns = np.nonzero(changed)
    assert changed.any() and changed.mean() < 0.5  # the face box changed, the rest did not
    assert not changed[0].any() and not changed[-1].any()
    assert abs(np.ptp(rows) - np.ptp(columns)) <= 2  # a square window
    assert load_image(out / "astronaut_face0.png").shape == (SIZE, SIZE, 3)
    # Four labelled panels, the 32 px faces shown 8x (nearest neighbour), 4 px apart.
    compare = load_image(out / "astronaut_face0_compare.png")
    assert compare.shape[1] == 4 * 8 * SIZE + 3 * 4 and compare.shape[0] > 8 * SIZE
    rows = (out / "faces.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("photo,face,box,")  # header + 3 files
    assert [r.split(",")[0] for r in rows[1:]] == ["astronaut.png", "broken.jpg", "noface.png"]


def test_aligned_restore_of_the_awkward_corpus_restores_or_rejects_each_file(
    tiny_savedmodel, tmp_path
):
    """Issue 8: every category of `image_fixtures` through gfrnet-restore -- restored, or
    rejected in one line naming the file and the problem, with no traceback and no output."""
    from image_fixtures import write_corpus

    photos = tmp_path / "corpus"
    photos.mkdir()
    outcomes = write_corpus(photos)
    guide = tmp_path / "guide.png"
    save_image(guide, load_sample()[0])
    out = tmp_path / "out"
    done = run_module(
        "gfrnet_tf.apps.restore",
        f"--model={tiny_savedmodel}",
        f"--input={photos}",
        f"--guide={guide}",
        f"--output={out}",
        "--aligned",
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    written = {p.name for p in out.iterdir()}
    for name, (outcome, *details) in outcomes.items():
        stem = Path(name).stem
        mine = [line for line in errors if f"corpus/{name}: " in line]
        if outcome == "converted":
            height, width = details[0].shape[:2]
            if height != width:  # decoded and oriented right, then refused as no face crop
                assert mine == [
                    f"error: {photos / name}: --aligned needs square face crops, "
                    f"got {width}x{height}"
                ], (name, mine)
                continue
            assert not mine, (name, mine)
            restored = load_image(out / f"{stem}_restored.png")
            assert restored.shape == details[0].shape, name  # aligned: the photo keeps its size
        else:
            assert len(mine) == 1 and details[0] in mine[0], (name, mine)
            assert not any(f.startswith(stem + "_") for f in written), (name, written)
    restorable = sum(
        o == "converted" and d[0].shape[0] == d[0].shape[1] for o, *d in outcomes.values()
    )
    assert restorable > 0 and len(errors) == len(outcomes) - restorable
    assert f"failed: bad_image {len(errors)}" in done.stderr
