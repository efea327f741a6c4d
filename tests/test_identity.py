"""Identity distance (dlib's ResNet, a user's ArcFace file) and LMD on real faces.

Faces: the bundled astronaut crop (Eileen Collins, from scikit-image's `astronaut`) and,
as a different person, the cameraman of scikit-image's `camera` (grey, 512x512; his box
is where dlib's CNN face detector from `face-recognition-models` finds him: the HOG
detector misses his lowered head).
"""

import cv2
import dlib
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from gfrnet_tf.data.landmarks import flip_landmarks
from gfrnet_tf.errors import BadModelFileError
from gfrnet_tf.evaluation import identity as identity_measures
from gfrnet_tf.faces import identity
from gfrnet_tf.faces.landmarks import DlibLandmarks, packaged_dlib_model
from gfrnet_tf.sample import load_sample


@pytest.fixture(scope="module")
def astronaut():
    image, landmarks = load_sample()
    return np.asarray(image), np.asarray(landmarks, np.float32)


# The cameraman's face box as dlib's CNN detector (`mmod_human_face_detector.dat`) finds it
# at upsampling 1; fixed here because the detector takes minutes on a loaded 2-core machine.
CAMERAMAN_BOX = (189, 117, 69, 69)


@pytest.fixture(scope="module")
def cameraman():
    image = np.ascontiguousarray(np.stack([skimage.data.camera()] * 3, -1))
    return image, DlibLandmarks().locate(image, CAMERAMAN_BOX)


@pytest.fixture(scope="module")
def dlib_identity():
    return identity.DlibIdentity()


def _rotated(image, landmarks, degrees):
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    rotated = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return rotated, np.c_[landmarks, np.ones(len(landmarks))] @ matrix.T


def test_identity_distance_of_a_face_with_itself_is_zero(astronaut, dlib_identity):
    image, landmarks = astronaut
    first = dlib_identity.embed([image], [landmarks])
    second = dlib_identity.embed([image.copy()], [landmarks.copy()])
    assert first.shape == (1, 128)
    assert dlib_identity.distance(first, second)[0] == 0.0


def test_mirrored_and_rotated_copies_stay_the_same_person(astronaut, dlib_identity):
    image, landmarks = astronaut
    mirrored = np.ascontiguousarray(image[:, ::-1])
    mirrored_points = flip_landmarks(landmarks, image.shape[1]).numpy()
    rotated, rotated_points = _rotated(image, landmarks, 10.0)
    embeddings = dlib_identity.embed(
        [image, mirrored, rotated], [landmarks, mirrored_points, rotated_points]
    )
    distances = dlib_identity.distance(embeddings[:1], embeddings[1:])
    # Measured: 0.21 mirrored (a face is not symmetric), 0.03 rotated by 10 degrees.
    assert 0 < distances[0] < 0.3
    assert 0 < distances[1] < 0.1


def test_a_different_person_is_beyond_dlibs_threshold(astronaut, cameraman, dlib_identity):
    embeddings = dlib_identity.embed([astronaut[0], cameraman[0]], [astronaut[1], cameraman[1]])
    distance = dlib_identity.distance(embeddings[0], embeddings[1])
    assert distance > identity.DLIB_SAME_PERSON  # measured 0.78


def test_dlib_identity_equals_dlib_called_directly(astronaut, cameraman, dlib_identity):
    """dlib's own one-call path: its predictor's shape and its internal chip extraction."""
    recognizer = dlib.face_recognition_model_v1(
        str(packaged_dlib_model("dlib_face_recognition_resnet_model_v1.dat"))
    )
    predictor = dlib.shape_predictor(
        str(packaged_dlib_model("shape_predictor_68_face_landmarks.dat"))
    )
    for image, _ in (astronaut, cameraman):
        shape = predictor(image, dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1))
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        direct = np.array(recognizer.compute_face_descriptor(image, shape, 0, 0.25))
        ours = dlib_identity.embed([image], [points])[0]
        np.testing.assert_allclose(ours, direct, atol=1e-5)


def test_five_points_and_similarity_recover_a_known_transform():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = np.radians(17.0), 0.6, np.array([12.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = identity.similarity_transform(source, source @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rotation, shift[:, None]]), atol=1e-10)


def test_arcface_alignment_is_insightfaces_skimage_similarity(astronaut):
    """insightface aligns with scikit-image's least-squares `SimilarityTransform`."""
    from skimage.transform import SimilarityTransform

    image, landmarks = astronaut
    points = identity.five_points(landmarks)
    np.testing.assert_allclose(points[:2], [landmarks[36:42].mean(0), landmarks[42:48].mean(0)])
    reference = SimilarityTransform.from_estimate(points, identity.ARCFACE_TEMPLATE)
    matrix = identity.similarity_transform(points, identity.ARCFACE_TEMPLATE)
    np.testing.assert_allclose(matrix, reference.params[:2], atol=1e-9)
    crop = identity.arcface_crop(image, landmarks)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, cv2.warpAffine(image, reference.params[:2], (112, 112)))


def _tiny_arcface(channels_first: bool):
    """A stand-in ArcFace: 112x112x3 -> 16-D (conv, pool, dense), its layout as asked."""
    shape = (3, 112, 112) if channels_first else (112, 112, 3)
    inputs = tf.keras.Input(shape, batch_size=1, name="face")
    x = tf.keras.layers.Permute((2, 3, 1))(inputs) if channels_first else inputs
    x = tf.keras.layers.Conv2D(4, 5, strides=4, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(16)(x))


def _expected_embedding(model, image, landmarks, channels_first):
    face = (identity.arcface_crop(image, landmarks).astype(np.float32) - 127.5) / 127.5
    face = face.transpose(2, 0, 1) if channels_first else face
    embedding = model(face[np.newaxis]).numpy()[0].astype(np.float64)
    return embedding / np.linalg.norm(embedding)


def test_arcface_tflite_loader_runs_the_models_numbers(tmp_path, astronaut, cameraman):
    model = _tiny_arcface(channels_first=False)
    path = tmp_path / "arcface.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    arcface = identity.ArcFaceIdentity(path)
    assert not arcface.channels_first
    embeddings = arcface.embed([astronaut[0], cameraman[0]], [astronaut[1], cameraman[1]])
    expected = [_expected_embedding(model, *face, False) for face in (astronaut, cameraman)]
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    angle = np.degrees(np.arccos(np.clip(expected[0] @ expected[1], -1, 1)))
    np.testing.assert_allclose(arcface.distance(embeddings[0], embeddings[1]), angle, atol=1e-3)
    assert arcface.distance(embeddings[0], embeddings[0]) < 1e-3


def test_arcface_onnx_loader_reads_a_channels_first_model(tmp_path, astronaut):
    tf2onnx = pytest.importorskip("tf2onnx")
    model = _tiny_arcface(channels_first=True)
    path = tmp_path / "arcface.onnx"
    spec = (tf.TensorSpec((1, 3, 112, 112), tf.float32, name="face"),)
    tf2onnx.convert.from_function(tf.function(model), input_signature=spec, output_path=str(path))
    arcface = identity.ArcFaceIdentity(path)
    assert arcface.channels_first
    embedding = arcface.embed([astronaut[0]], [astronaut[1]])[0]
    np.testing.assert_allclose(embedding, _expected_embedding(model, *astronaut, True), atol=1e-5)


def test_arcface_file_problems_name_the_file(tmp_path):
    with pytest.raises(identity.IdentityModelError, match="not found"):
        identity.ArcFaceIdentity(tmp_path / "missing.onnx")
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(identity.IdentityModelError, match=".onnx or .tflite"):
        identity.ArcFaceIdentity(tmp_path / "model.pt")
    (tmp_path / "junk.tflite").write_bytes(b"not a model")
    with pytest.raises(BadModelFileError) as caught:
        identity.ArcFaceIdentity(tmp_path / "junk.tflite")
    assert caught.value.source == str(tmp_path / "junk.tflite")


def test_face_measures_on_the_ground_truth_itself(astronaut):
    measures, note = identity_measures.face_measures()
    assert note == ""
    image, landmarks = astronaut
    reference = measures.reference(image[np.newaxis], landmarks[np.newaxis])
    values = measures.measure(image[np.newaxis], reference)
    assert values["identity_distance"][0] == 0.0 and values["identity_match"][0] == 1.0
    assert values["lmd"][0] == 0.0  # the same detector on the same pixels from the same box


def test_lmd_grows_with_a_misplaced_face_and_matches_a_direct_computation(astronaut):
    measures, _ = identity_measures.face_measures()
    image, landmarks = astronaut
    shifted = np.roll(image, (6, 4), axis=(0, 1))
    reference = measures.reference(image[np.newaxis], landmarks[np.newaxis])
    lmd = measures.measure(shifted[np.newaxis], reference)["lmd"][0]
    box = identity_measures.landmark_box(landmarks)
    detected = DlibLandmarks().locate(shifted, box)
    truth = DlibLandmarks().locate(image, box)
    direct = np.linalg.norm(detected - truth, axis=-1).mean() / np.linalg.norm(
        truth[45] - truth[36]
    )
    np.testing.assert_allclose(lmd, direct, rtol=1e-5)
    assert lmd > 0.02  # the face moved by 7 px, ~5 % of its inter-ocular distance


def test_without_dlib_the_columns_are_left_out_with_the_reason(hide_module):
    hide_module("dlib")
    measures, note = identity_measures.face_measures()
    assert measures is None
    assert note.startswith("identity_distance, identity_match, lmd left out") and "dlib" in note
