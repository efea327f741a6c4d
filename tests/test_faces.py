"""Face detection, crops, landmark sources and quality measures on the bundled real face."""

import cv2
import numpy as np
import pytest

from gfrnet_tf import faces
from gfrnet_tf.errors import NoFaceError
from gfrnet_tf.ibug68 import MIRROR_PERMUTATION
from gfrnet_tf.sample import load_sample

INNER = slice(17, 68)  # brows, nose, eyes, mouth: inside any face box (the jaw may not be)


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def sample_face(sample):
    return faces.best_face(sample[0], "sample")


def _rotate(points, degrees, centre=(128.0, 128.0)):
    theta = np.radians(degrees)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return (points - centre) @ rotation.T + centre


def _mirror(points, width=256):
    mirrored = np.stack([width - 1 - points[:, 0], points[:, 1]], axis=-1)
    return mirrored[list(MIRROR_PERMUTATION)]


def test_face_found_on_sample_with_landmarks_inside_box(sample, sample_face):
    image, landmarks = sample
    x, y, width, height = sample_face.box
    assert sample_face.confidence > 0.99
    inner = landmarks[INNER]
    assert (inner[:, 0] > x).all() and (inner[:, 0] < x + width).all()
    assert (inner[:, 1] > y).all() and (inner[:, 1] < y + height).all()
    # MTCNN's own eye keypoints agree with the 68-point eye centres.
    eyes = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0)])
    assert np.abs(sample_face.keypoints[:2] - eyes).max() < 6


def test_large_photo_detected_downscaled_in_its_own_coordinates(sample, sample_face):
    factor = 5  # 1280 px: detected at 1024 px, boxes mapped back
    large = cv2.resize(sample[0], None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    face = faces.best_face(large, "large.jpg")
    np.testing.assert_allclose(
        face.box, np.multiply(sample_face.box, factor), atol=0.06 * factor * sample_face.box[3]
    )
    np.testing.assert_allclose(
        face.keypoints, sample_face.keypoints * factor, atol=0.03 * factor * sample_face.box[3]
    )


def test_batched_detection_equals_single_whatever_the_neighbours(sample, sample_face):
    image = sample[0]
    other = cv2.resize(image, (200, 300), interpolation=cv2.INTER_AREA)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    batch = faces.detect_faces_batch([image, other, mirrored, image[:250]])
    for found, alone in zip(batch, [image, other, mirrored, image[:250]]):
        single = faces.detect_faces(alone)
        assert [f.box for f in found] == [f.box for f in single]
        assert [f.confidence for f in found] == [f.confidence for f in single]
    assert batch[0][0].box == sample_face.box


def test_dlib_reproduces_the_stored_sample_landmarks(sample, sample_face):
    image, landmarks = sample
    located = faces.DlibLandmarks().locate(image, sample_face.box, "sample")
    assert located.shape == (68, 2) and located.dtype == np.float32
    # The stored points came from the full photo, these from the crop: same face, the
    # box differs in scale, so agreement is to a few pixels, not exact.
    assert np.abs(located - landmarks).mean() < 3


def test_no_face_in_a_face_free_image():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), (0, 0), 4)
    with pytest.raises(NoFaceError) as caught:
        faces.best_face(smooth, "clouds.jpg")
    assert caught.value.source == "clouds.jpg"


def test_square_window_centred_with_margin():
    window = faces.square_window((100, 50, 40, 60), margin=0.25, size=64)
    assert window.side == 90
    assert (window.x0 + window.side / 2, window.y0 + window.side / 2) == (120, 80)


def test_crop_maps_points_like_the_pixels():
    image = np.zeros((200, 300, 3), np.uint8)
    spot = np.array([151.0, 83.0])
    ys, xs = np.mgrid[:200, :300]
    blob = np.exp(-((xs - spot[0]) ** 2 + (ys - spot[1]) ** 2) / (2 * 6.0**2))
    image[...] = (255 * blob)[..., None].astype(np.uint8)
    crop, window = faces.crop_face(image, (120, 60, 70, 50), margin=0.3, size=64)
    weights = crop[..., 0].astype(np.float64)
    cy, cx = np.mgrid[:64, :64]
    centroid = np.array([(weights * cx).sum(), (weights * cy).sum()]) / weights.sum()
    np.testing.assert_allclose(window.to_crop(spot), centroid, atol=0.15)


def test_crop_pads_outside_with_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop, window = faces.crop_face(image, (0, 0, 40, 40), margin=0.5, size=80)
    assert (window.x0, window.y0, window.side) == (-20, -20, 80)
    assert (crop[:15, :15] == 0).all() and (crop[25:, 25:] == 200).all()


def test_yaw_and_roll_invariances(sample):
    landmarks = sample[1].astype(np.float64)
    yaw, roll = faces.yaw_degrees(landmarks), faces.roll_degrees(landmarks)
    assert abs(yaw) < 10 and abs(roll) < 10  # the sample faces the camera
    assert faces.yaw_degrees(_mirror(landmarks)) == pytest.approx(-yaw, abs=1e-6)
    assert faces.roll_degrees(_mirror(landmarks)) == pytest.approx(-roll, abs=1e-6)
    tilted = _rotate(landmarks, 25) * 0.5
    assert faces.yaw_degrees(tilted) == pytest.approx(yaw, abs=1e-6)
    assert faces.roll_degrees(tilted) == pytest.approx(roll + 25, abs=1e-6)


def test_yaw_reads_a_turned_head():
    landmarks = load_sample()[1].astype(np.float64)
    jaw_mid = (landmarks[0, 0] + landmarks[16, 0]) / 2
    half = (landmarks[16, 0] - landmarks[0, 0]) / 2
    turned = landmarks.copy()
    turned[30, 0] = jaw_mid + half * np.sin(np.radians(30))  # nose a quarter way over
    turned[30, 1] = (landmarks[0, 1] + landmarks[16, 1]) / 2
    turned[0, 1] = turned[16, 1]
    assert faces.yaw_degrees(turned) == pytest.approx(30, abs=1e-6)


def test_eye_aspect_ratio_hand_example_and_closing():
    height = 0.45
    eye = np.array([[0, 0], [1, -height], [2, -height], [3, 0], [2, height], [1, height]])
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = eye
    landmarks[42:48] = eye + (10, 0)
    assert faces.eye_aspect_ratio(landmarks) == pytest.approx(2 * height / 3)
    sample = load_sample()[1].astype(np.float64)
    closed = sample.copy()
    for eye_slice in (slice(36, 42), slice(42, 48)):
        centre_y = sample[eye_slice, 1].mean()
        closed[eye_slice, 1] = centre_y + 0.2 * (sample[eye_slice, 1] - centre_y)
    # The sample's open eyes read ~0.3; squeezed to a fifth they fall below 0.2 (closed).
    assert faces.eye_aspect_ratio(closed) < 0.2 < faces.eye_aspect_ratio(sample)


def test_sharpness_drops_with_blur(sample):
    image = sample[0]
    assert faces.sharpness(np.full((32, 32, 3), 90, np.uint8)) == 0
    blurred = cv2.GaussianBlur(image, (0, 0), 2)
    assert faces.sharpness(blurred) < 0.2 * faces.sharpness(image)


def test_file_landmarks_pts_and_csv(tmp_path, sample):
    landmarks = sample[1]
    (tmp_path / "alice").mkdir()
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in landmarks)
    (tmp_path / "alice" / "001.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    located = faces.FileLandmarks(tmp_path).locate(None, None, "alice/001.jpg")
    np.testing.assert_allclose(located, landmarks, atol=1e-3)

    header = "image," + ",".join(f"x{i},y{i}" for i in range(68))
    row = "alice/001.jpg," + ",".join(f"{v:.3f}" for v in landmarks.ravel())
    (tmp_path / "points.csv").write_text(f"{header}\n{row}\n")
    table = faces.FileLandmarks(tmp_path / "points.csv")
    np.testing.assert_allclose(table.locate(None, None, "alice/001.jpg"), landmarks, atol=1e-3)
    with pytest.raises(faces.LandmarksError, match="no row for 'bob/1.jpg'"):
        table.locate(None, None, "bob/1.jpg")


@pytest.mark.parametrize(
    "content, words",
    [
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n5 6\n}\n", "expected 68"),
        ("version: 1\n{\n" + "a b\n" * 68 + "}\n", "not numbers"),
        ("version: 1\n{\n" + "nan 1\n" * 68 + "}\n", "NaN"),
    ],
    ids=["too-few", "text", "nan"],
)
def test_malformed_pts_rejected_by_name(tmp_path, content, words):
    (tmp_path / "bad.pts").write_text(content)
    with pytest.raises(faces.LandmarksError, match=words) as caught:
        faces.FileLandmarks(tmp_path).locate(None, None, "bad.jpg")
    assert caught.value.source == str(tmp_path / "bad.pts")
    with pytest.raises(faces.LandmarksError, match="No such file|cannot read"):
        faces.FileLandmarks(tmp_path).locate(None, None, "missing.jpg")
