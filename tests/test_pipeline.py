"""make_dataset / array_dataset: structure, ranges, seeding, corrupt records, distribution."""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data import degrade, pipeline, records
from gfrnet_tf.data.images import to_model_range
from gfrnet_tf.errors import BadConfigError

SIZE = 32


def _config(**changes):
    config = pipeline.default_input_config()
    config.image_size = SIZE
    config.batch_size = 2
    config.shuffle_buffer = 8
    config.update(changes)
    return config


def _dotted_pair(rng):
    """Dark images with a bright dot on every landmark: lets a test see if points follow pixels."""
    images, points = [], []
    for _ in range(2):
        xy = rng.randint(2, SIZE - 2, (68, 2))
        image = np.full((SIZE, SIZE, 3), 20, np.uint8)
        for x, y in xy:
            image[y - 1 : y + 2, x - 1 : x + 2] = 250
        images.append(image)
        points.append(xy.astype(np.float32))
    return images[0], images[1], points[0], points[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two shards of 4 pairs each, and the pairs in shard order."""
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.RandomState(0)
    pairs = [_dotted_pair(rng) for _ in range(8)]
    for shard in range(2):
        examples = [records.encode_pair(*pair) for pair in pairs[4 * shard : 4 * shard + 4]]
        records.write_shard(folder / f"pairs-{shard:05d}.tfrecord", examples)
    return str(folder / "pairs-*.tfrecord"), pairs


def _epoch(dataset):
    return [tf.nest.map_structure(lambda t: t.numpy(), element) for element in dataset]


def _degraded(epoch):
    return np.concatenate([inputs["degraded"] for inputs, _ in epoch])


def test_elements_have_the_documented_structure_dtypes_and_ranges(shards):
    pattern, _ = shards
    dataset = pipeline.make_dataset(pattern, _config(), training=True)
    epoch = _epoch(dataset)
    assert len(epoch) == 4  # 8 records, batch 2
    inputs, targets = epoch[0]
    assert set(inputs) == {"degraded", "guide"}
    assert set(targets) == {"target", "landmarks", "guide_landmarks", "degradation"}
    for image in (inputs["degraded"], inputs["guide"], targets["target"]):
        assert image.shape == (2, SIZE, SIZE, 3) and image.dtype == np.float32
        assert -1.0 <= image.min() and image.max() <= 1.0
    assert targets["landmarks"].shape == targets["guide_landmarks"].shape == (2, 68, 2)
    sets = degrade.paper_parameter_sets()
    for name in degrade.PARAMETERS:
        values = np.concatenate([t["degradation"][name] for _, t in epoch])
        assert values.shape == (8,)
        assert np.isin(values, np.asarray(sets[name], values.dtype)).all(), name


def test_evaluation_gives_stored_target_guide_and_landmarks(shards):
    pattern, pairs = shards
    epoch = _epoch(pipeline.make_dataset(pattern, _config(), training=False))
    guides = np.concatenate([inputs["guide"] for inputs, _ in epoch])
    targets = np.concatenate([t["target"] for _, t in epoch])
    landmarks = np.concatenate([t["landmarks"] for _, t in epoch])
    # Both shards are read at once (interleave), so compare as sets of records.
    expected = {pair[0].tobytes(): pair for pair in pairs}
    for guide, target, points in zip(guides, targets, landmarks):
        pair = expected[np.round((target + 1) * 127.5).astype(np.uint8).tobytes()]
        np.testing.assert_allclose(guide, to_model_range(pair[1]).numpy(), atol=1e-6)
        np.testing.assert_array_equal(points, pair[2])
    assert len(targets) == len(expected)


def test_evaluation_keeps_the_last_partial_batch_training_does_not(tmp_path):
    """5 records, batch 2: an evaluation measures all 5; training batches stay full."""
    rng = np.random.RandomState(3)
    pairs = [_dotted_pair(rng) for _ in range(5)]
    path = str(tmp_path / "five.tfrecord")
    records.write_shard(path, [records.encode_pair(*pair) for pair in pairs])
    evaluation = _epoch(pipeline.make_dataset(path, _config(), training=False))
    assert [len(t["target"]) for _, t in evaluation] == [2, 2, 1]
    # One shard, read in order: the batches hold exactly the 5 stored targets.
    targets = np.concatenate([t["target"] for _, t in evaluation])
    np.testing.assert_allclose(targets, to_model_range(np.stack([p[0] for p in pairs])), atol=1e-6)
    training = _epoch(pipeline.make_dataset(path, _config(), training=True))
    assert [len(t["target"]) for _, t in training] == [2, 2]
    counted = _epoch(pipeline.make_dataset(path, _config(), training=False, drop_remainder=True))
    assert [len(t["target"]) for _, t in counted] == [2, 2]


def test_seeded_evaluation_is_bit_identical_across_epochs(shards):
    pattern, _ = shards
    dataset = pipeline.make_dataset(pattern, _config(), training=False)
    first, second = _degraded(_epoch(dataset)), _degraded(_epoch(dataset))
    np.testing.assert_array_equal(first, second)


def test_seeded_degradation_depends_on_the_record_not_on_what_else_is_read(shards):
    pattern, _ = shards
    first_shard = pattern.replace("*", "00000")
    alone = _epoch(pipeline.make_dataset(first_shard, _config(), training=False))
    together = _epoch(pipeline.make_dataset(pattern, _config(), training=False))

    def by_target(epoch):
        pairs = zip(np.concatenate([t["target"] for _, t in epoch]), _degraded(epoch))
        return {target.tobytes(): degraded for target, degraded in pairs}

    alone, together = by_target(alone), by_target(together)
    assert len(alone) == 4
    for key, degraded in alone.items():
        np.testing.assert_array_equal(degraded, together[key])


def test_random_training_degradation_differs_between_epochs(shards):
    pattern, _ = shards
    dataset = pipeline.make_dataset(pattern, _config(flip=False, deterministic=True), training=True)
    first, second = _epoch(dataset), _epoch(dataset)
    blur = [np.concatenate([t["degradation"]["blur"] for _, t in e]) for e in (first, second)]
    assert not np.array_equal(blur[0], blur[1])


def test_fixed_mode_applies_one_setting_to_every_record(shards):
    pattern, _ = shards
    config = _config()
    config.degradation.mode = "fixed"
    config.degradation.fixed.update({"scale": 4.0, "noise": 0.0, "blur": 0.0, "jpeg_quality": 0})
    epoch = _epoch(pipeline.make_dataset(pattern, config, training=True))
    scales = np.concatenate([t["degradation"]["scale"] for _, t in epoch])
    np.testing.assert_array_equal(scales, np.full(8, 4.0, np.float32))
    # Noise-free setting: the pipeline's output is exactly Eq. 4 applied to its target.
    setting = degrade.fixed_degradation(config.degradation.fixed)
    for inputs, targets in epoch:
        for target, degraded in zip(targets["target"], inputs["degraded"]):
            expected = degrade.degrade((target + 1.0) / 2.0, setting, tf.constant([0, 0]))
            np.testing.assert_allclose((degraded + 1.0) / 2.0, expected.numpy(), atol=1e-5)
            assert np.abs(degraded - target).mean() > 0.05  # and it did degrade


def test_deterministic_option_reproduces_a_run(shards):
    pattern, _ = shards
    config = _config(deterministic=True, seed=3)
    runs = [
        _degraded(_epoch(pipeline.make_dataset(pattern, config, training=True))) for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = _degraded(
        _epoch(pipeline.make_dataset(pattern, _config(deterministic=True, seed=4), training=True))
    )
    assert not np.array_equal(runs[0], other)


def _bright_at(images, points):
    """Fraction of points that sit on a bright pixel of their image ([-1, 1] images)."""
    xy = np.round(points).astype(int).clip(0, SIZE - 1)
    rows = np.arange(len(images))[:, None]
    return np.mean(images[rows, xy[..., 1], xy[..., 0], 0] > 0.5)


def test_flip_and_synthetic_pose_keep_points_on_their_dots(shards):
    pattern, _ = shards
    config = _config()
    config.synthetic_pose.enabled = True
    epoch = _epoch(pipeline.make_dataset(pattern, config, training=True))
    targets = epoch[0][1]
    assert targets["flow"].shape == (2, SIZE, SIZE, 2)
    targets_all = np.concatenate([t["target"] for _, t in epoch])
    points_all = np.concatenate([t["landmarks"] for _, t in epoch])
    assert _bright_at(targets_all, points_all) == 1.0
    # The mirror image of the points must NOT match: the check can tell a lost flip.
    mirrored = points_all * [-1, 1] + [SIZE - 1, 0]
    assert _bright_at(targets_all, mirrored) < 0.6
    guides = np.concatenate([i["guide"] for i, _ in epoch])
    guide_points = np.concatenate([t["guide_landmarks"] for _, t in epoch])
    assert _bright_at(guides, guide_points) > 0.95  # warped dots are blurred a little


def test_corrupt_records_stop_iteration_with_shard_and_index(tmp_path):
    path = _shard_with_two_bad_records(tmp_path)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{path}: record 1: schema version 0"):
        _epoch(pipeline.make_dataset(path, _config(batch_size=1), training=False))


def test_skip_corrupt_drops_and_counts_bad_records(tmp_path):
    path = _shard_with_two_bad_records(tmp_path)
    skipped = pipeline.SkippedRecords()
    config = _config(batch_size=1, skip_corrupt=True)
    epoch = _epoch(pipeline.make_dataset(path, config, training=False, skipped=skipped))
    assert len(epoch) == 4
    assert skipped.skipped == 2


def _shard_with_two_bad_records(tmp_path):
    """Six records; record 1 has no schema version, record 4 only 10 landmark values."""
    rng = np.random.RandomState(1)
    examples = [records.encode_pair(*_dotted_pair(rng)) for _ in range(6)]
    for index, key in ((1, "schema_version"), (4, "landmarks")):
        example = tf.train.Example.FromString(examples[index])
        if key == "schema_version":
            del example.features.feature[key]
        else:
            del example.features.feature[key].float_list.value[10:]
        examples[index] = example.SerializeToString()
    path = str(tmp_path / "mixed.tfrecord")
    records.write_shard(path, examples)
    return path


def test_distribute_datasets_from_function_gives_per_replica_batches(shards):
    pattern, _ = shards
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    config = _config(batch_size=4)
    distributed = strategy.distribute_datasets_from_function(
        lambda context: pipeline.make_dataset(pattern, config, training=True, input_context=context)
    )
    inputs, targets = next(iter(distributed))
    assert inputs["degraded"].shape == (4, SIZE, SIZE, 3)
    assert targets["degradation"]["scale"].shape == (4,)


def test_array_dataset_needs_guides_or_synthetic_pose():
    rng = np.random.RandomState(2)
    images = rng.randint(0, 256, (4, 40, 40, 3)).astype(np.uint8)
    points = rng.uniform(5, 35, (4, 68, 2)).astype(np.float32)
    with pytest.raises(BadConfigError, match="synthetic_pose"):
        pipeline.array_dataset(images, points, _config(), training=True)
    config = _config()
    config.synthetic_pose.enabled = True
    inputs, targets = next(iter(pipeline.array_dataset(images, points, config, training=False)))
    assert inputs["guide"].shape == (2, SIZE, SIZE, 3)  # resized 40 -> 32
    np.testing.assert_allclose(
        targets["landmarks"][0], (points[0] + 0.5) * SIZE / 40 - 0.5, rtol=1e-5
    )


@pytest.mark.parametrize(
    "changes, key",
    [({"image_size": 4}, "image_size"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_settings_raise_bad_config(shards, changes, key):
    with pytest.raises(BadConfigError, match=key):
        pipeline.make_dataset(shards[0], _config(**changes), training=True)


def test_unknown_mode_and_empty_pattern_raise_bad_config(shards, tmp_path):
    config = _config()
    config.degradation.mode = "sometimes"
    with pytest.raises(BadConfigError, match="mode"):
        pipeline.make_dataset(shards[0], config, training=True)
    with pytest.raises(BadConfigError, match="matches no TFRecord shards"):
        pipeline.make_dataset(str(tmp_path / "none-*.tfrecord"), _config(), training=True)


def test_synthetic_pose_never_decodes_the_stored_guide(tmp_path):
    # The stored guide is replaced, so its decoding is pruned: a PNG cut off after its
    # header (which the header checks still read) goes unnoticed in synthetic-pose mode and
    # stops a stored-guide pipeline at the decode.
    rng = np.random.RandomState(2)
    target, guide, points, _ = _dotted_pair(rng)
    truncated = tf.io.encode_png(guide).numpy()[:64]
    path = str(tmp_path / "bad-guide.tfrecord")
    records.write_shard(path, [records.encode_pair(target, truncated, points, points)])
    config = _config(batch_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError):
        _epoch(pipeline.make_dataset(path, config, training=False))
    config.synthetic_pose.enabled = True
    ((inputs, targets),) = _epoch(pipeline.make_dataset(path, config, training=False))
    assert inputs["guide"].shape == (1, SIZE, SIZE, 3) and targets["flow"].shape == (
        1,
        SIZE,
        SIZE,
        2,
    )
