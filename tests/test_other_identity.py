"""Ours(R)'s data: every target paired with the guide of another person, at any batch size."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.configs import load_config
from gfrnet_tf.configs.variants import variant_config
from gfrnet_tf.data import pipeline, records
from gfrnet_tf.data.other_identity import identity_code
from gfrnet_tf.errors import BadConfigError, BadRecordError
from gfrnet_tf.training import fit

SIZE = 32
PEOPLE = ("ada", "björn", "chidi", "dana", "émile")
TARGETS_PER_PERSON = 3


def _guide(person):
    """A person's guide: one flat colour (which person it is shows in its pixels) and
    landmarks offset by the person's number (which guide they belong to shows too)."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[..., 0] = 30 + 40 * person
    image[..., 1] = 200 - 30 * person
    points = np.random.RandomState(person).uniform(4, SIZE - 5, (68, 2)).astype(np.float32)
    return image, points


def _write_people(folder, people):
    """`people` as the preparation pipeline shards them: each shard holds whole people,
    each record a target of its person with that person's guide."""
    rng = np.random.RandomState(0)
    paths = []
    for shard, names in enumerate((people[:2], people[2:])):
        if not names:
            continue
        examples = []
        for name in names:
            guide, guide_points = _guide(people.index(name))
            for k in range(TARGETS_PER_PERSON):
                target = rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
                points = rng.uniform(4, SIZE - 5, (68, 2)).astype(np.float32)
                examples.append(
                    records.encode_pair(
                        target, guide, points, guide_points, identity=name, target_file=f"{k}.png"
                    )
                )
        path = folder / f"train-{shard:05d}.tfrecord"
        records.write_shard(path, examples)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def people_shards(tmp_path_factory):
    return _write_people(tmp_path_factory.mktemp("people"), PEOPLE)


def _config(batch_size):
    config = pipeline.default_input_config()
    config.image_size, config.batch_size, config.shuffle_buffer = SIZE, batch_size, 16
    config.flip = False  # the guide landmarks are then the stored ones, exactly
    return config


def _elements(dataset):
    for inputs, targets in dataset:
        for i in range(inputs["guide"].shape[0]):
            yield (
                int(targets["identity"][i]),
                int(targets["guide_identity"][i]),
                inputs["guide"][i].numpy(),
                targets["guide_landmarks"][i].numpy(),
            )


def _person_of(code):
    return [int(identity_code(name)) for name in PEOPLE].index(code)


def _check_pairs(elements):
    """Every guide is another person's, and its pixels and landmarks are that person's."""
    guides_of = collections.defaultdict(set)
    for target_code, guide_code, guide, guide_points in elements:
        target, person = _person_of(target_code), _person_of(guide_code)
        assert person != target
        image, points = _guide(person)
        np.testing.assert_allclose(guide, image / 127.5 - 1.0, atol=1e-6)
        np.testing.assert_allclose(guide_points, points, atol=1e-5)
        guides_of[target].add(person)
    return guides_of


def test_training_at_batch_1_gives_every_target_another_persons_guide(people_shards):
    dataset = pipeline.make_dataset(
        people_shards, _config(batch_size=1), training=True, other_identity_guides=True
    )
    passes = [list(_elements(dataset)) for _ in range(3)]
    records_count = len(PEOPLE) * TARGETS_PER_PERSON
    assert [len(elements) for elements in passes] == [records_count] * 3  # none dropped
    guides_of = _check_pairs([element for elements in passes for element in elements])
    assert set(guides_of) == set(range(len(PEOPLE)))  # every person was a target
    # Shuffled: over three passes most people met more than one other person's guide.
    assert sum(len(guides) > 1 for guides in guides_of.values()) >= 3


def test_evaluation_pairs_the_same_way_every_pass(people_shards):
    dataset = pipeline.make_dataset(
        people_shards, _config(batch_size=4), training=False, other_identity_guides=True
    )
    first, second = (list(_elements(dataset)) for _ in range(2))
    assert len(first) == len(PEOPLE) * TARGETS_PER_PERSON  # the last, partial batch kept
    _check_pairs(first)
    assert [element[:2] for element in first] == [element[:2] for element in second]


def test_r_trains_through_fit_s_dataset_at_batch_1(people_shards):
    config = variant_config(load_config("smoke"), "R")
    assert fit.other_identity_guides(config.model)
    assert not fit.other_identity_guides(variant_config(load_config("smoke"), "Full").model)
    input_config = _config(batch_size=1)
    dataset = fit.distributed_dataset(
        tf.distribute.get_strategy(), people_shards, input_config, True, other_identity_guides=True
    )
    inputs, targets = next(iter(dataset))
    assert inputs["guide"].shape[0] == 1
    assert int(targets["identity"][0]) != int(targets["guide_identity"][0])


def test_one_persons_records_are_refused_in_one_line(tmp_path):
    files = _write_people(tmp_path, ("ada", "ada"))
    with pytest.raises(BadConfigError, match="only 'ada'.*at least two people"):
        pipeline.make_dataset(files, _config(1), training=True, other_identity_guides=True)


def test_a_record_without_a_person_is_refused(tmp_path):
    files = _write_people(tmp_path, ("", "ada"))
    with pytest.raises(BadRecordError, match="record 0: no identity"):
        pipeline.make_dataset(files, _config(1), training=True, other_identity_guides=True)


def test_synthetic_pose_guides_cannot_be_another_persons(people_shards):
    config = _config(1)
    config.synthetic_pose.enabled = True
    with pytest.raises(BadConfigError, match="synthetic-pose"):
        pipeline.make_dataset(people_shards, config, training=True, other_identity_guides=True)
