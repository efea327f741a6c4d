"""TFRecord schema: round trip, resize with landmarks, errors that name shard and record."""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data import parsing, records, validation
from gfrnet_tf.errors import BadRecordError


def _pair(rng, size=32):
    target = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
    guide = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
    points = rng.uniform(0, size - 1, (2, 68, 2)).astype(np.float32)
    return target, guide, points[0], points[1]


def _example(**features):
    """A hand-made record, to write what `encode_pair` refuses to."""

    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(value)))

    example = tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    )
    return example.SerializeToString()


def _valid_features(rng):
    target, guide, points, guide_points = _pair(rng)
    return {
        "schema_version": records.SCHEMA_VERSION,
        "target": tf.io.encode_png(target).numpy(),
        "guide": tf.io.encode_png(guide).numpy(),
        "landmarks": points.ravel(),
        "guide_landmarks": guide_points.ravel(),
    }


def _shard_with(tmp_path, bad_record, position=2, count=4):
    rng = np.random.RandomState(0)
    examples = [_example(**_valid_features(rng)) for _ in range(count)]
    examples[position] = bad_record
    path = str(tmp_path / "pairs-00000.tfrecord")
    records.write_shard(path, examples)
    return path


def test_round_trip_gives_back_images_landmarks_and_names(tmp_path):
    rng = np.random.RandomState(1)
    pairs = [_pair(rng) for _ in range(3)]
    path = str(tmp_path / "round.tfrecord")
    examples = [
        records.encode_pair(
            *pair, identity=f"person{i}", target_file=f"t{i}.jpg", guide_file=f"g{i}.jpg"
        )
        for i, pair in enumerate(pairs)
    ]
    assert records.write_shard(path, examples) == 3
    assert validation.validate_shard(path) == 3
    for i, serialized in enumerate(tf.data.TFRecordDataset(path)):
        sample = parsing.parse_pair(serialized)
        target, guide, points, guide_points = pairs[i]
        np.testing.assert_array_equal(np.round(sample["target"].numpy() * 255), target)
        np.testing.assert_array_equal(np.round(sample["guide"].numpy() * 255), guide)
        np.testing.assert_array_equal(sample["landmarks"].numpy(), points)
        np.testing.assert_array_equal(sample["guide_landmarks"].numpy(), guide_points)
        assert sample["identity"].numpy() == f"person{i}".encode()
        assert sample["guide_file"].numpy() == f"g{i}.jpg".encode()


def test_encoded_jpeg_bytes_are_stored_as_given(tmp_path):
    target, guide, points, guide_points = _pair(np.random.RandomState(2))
    jpeg = tf.io.encode_jpeg(target, quality=90).numpy()
    serialized = records.encode_pair(jpeg, guide, points, guide_points)
    stored = tf.train.Example.FromString(serialized).features.feature["target"].bytes_list.value[0]
    assert stored == jpeg
    decoded = parsing.parse_pair(serialized)["target"].numpy()
    np.testing.assert_array_equal(np.round(decoded * 255), tf.io.decode_jpeg(jpeg).numpy())


def test_resize_moves_landmarks_onto_the_same_image_feature():
    # A bright square centred on each of a few points; after resizing 48 -> 32 the
    # brightest pixel near each moved point must be at that point.
    image = np.zeros((48, 48, 3), np.float32)
    points = np.array([[10.0, 12.0], [30.0, 20.0], [24.0, 40.0]], np.float32)
    for x, y in points.astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 1.0
    resized, moved = parsing.resize_with_landmarks(image, points, 32)
    assert resized.shape == (32, 32, 3)
    gray = resized.numpy()[..., 0]
    for x, y in moved.numpy():
        window = gray[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3]
        peak_y, peak_x = np.unravel_index(np.argmax(window), window.shape)
        assert abs(int(x) - 2 + peak_x - x) <= 0.5 and abs(int(y) - 2 + peak_y - y) <= 0.5
    np.testing.assert_allclose(moved.numpy(), (points + 0.5) * 32 / 48 - 0.5, rtol=1e-6)


def test_right_size_is_not_resampled():
    image = np.random.RandomState(3).rand(32, 32, 3).astype(np.float32)
    points = np.full((68, 2), 5.0, np.float32)
    same, same_points = parsing.resize_with_landmarks(image, points, 32)
    np.testing.assert_array_equal(same.numpy(), image)
    np.testing.assert_array_equal(same_points.numpy(), points)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"landmarks": np.zeros(134, np.float32)}, "134 landmarks values, expected 136"),
        ({"schema_version": 7}, "schema version 7, expected 1"),
        ({"guide": b"not an image"}, "record 2"),
        ({"guide": b""}, "no guide image"),
    ],
)
def test_bad_record_names_shard_and_index(tmp_path, change, problem):
    features = dict(_valid_features(np.random.RandomState(4)), **change)
    path = _shard_with(tmp_path, _example(**features), position=2)
    with pytest.raises(BadRecordError, match=problem) as raised:
        validation.validate_shard(path)
    assert raised.value.source == f"{path}: record 2"
    assert str(raised.value).startswith(f"{path}: record 2: ")


def test_validation_limit_stops_before_a_later_bad_record(tmp_path):
    features = dict(_valid_features(np.random.RandomState(9)), schema_version=3)
    path = _shard_with(tmp_path, _example(**features), position=2)
    assert validation.validate_shard(path, limit=2) == 2
    with pytest.raises(BadRecordError, match="record 2: schema version 3"):
        validation.validate_shard(path, limit=3)


def test_in_graph_parse_error_carries_shard_and_index(tmp_path):
    features = dict(_valid_features(np.random.RandomState(5)), landmarks=np.zeros(10, np.float32))
    path = _shard_with(tmp_path, _example(**features), position=1)
    parsed = (
        tf.data.TFRecordDataset(path)
        .enumerate()
        .map(
            lambda index, serialized: parsing.parse_pair(serialized, shard=path, index=index)[
                "landmarks"
            ]
        )
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=f"{path}: record 1: 10 landmarks values"
    ):
        list(parsed)


def test_truncated_shard_is_a_bad_record_error(tmp_path):
    path = _shard_with(tmp_path, _example(**_valid_features(np.random.RandomState(6))))
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) - 100])
    with pytest.raises(
        BadRecordError,
        match=r"record 3: states a length of \d+ bytes .* only "
        r"\d+ follow \(truncated",
    ):
        validation.validate_shard(path)


def test_failed_write_leaves_neither_shard_nor_temporary(tmp_path):
    rng = np.random.RandomState(7)

    def examples():
        yield records.encode_pair(*_pair(rng))
        raise RuntimeError("source photo vanished")

    path = tmp_path / "broken.tfrecord"
    with pytest.raises(RuntimeError):
        records.write_shard(path, examples())
    assert list(tmp_path.iterdir()) == []


def test_encoder_refuses_wrong_landmark_shape():
    target, guide, points, _ = _pair(np.random.RandomState(8))
    with pytest.raises(BadRecordError, match=r"landmarks must be \[68, 2\]"):
        records.encode_pair(target, guide, points, points[:5], guide_file="g.png")
