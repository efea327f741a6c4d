"""The dataset folder as the handle: manifest reading, contradictions, and training on it
in-process."""

import json
import os
import shutil

import pytest

from gfrnet_tf.configs import load_config
from gfrnet_tf.data import PreparedDataset, default_input_config
from gfrnet_tf.data.prepared import write_manifest
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.sample import Split, write_sample_dataset
from gfrnet_tf.training import fit
from support import TINY

SIZE = 32
SPLITS = (Split("train", 6, 2, 1), Split("val", 2, 1, 2), Split("test", 3, 1, 3))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("data"), SIZE, SPLITS)


def test_a_dataset_folder_states_its_splits_counts_size_and_mode(sample):
    assert sample.splits == ("train", "val", "test")
    assert [sample.records(s) for s in sample.splits] == [6, 2, 3]
    assert [len(sample.files(s)) for s in sample.splits] == [2, 1, 1]
    assert sample.image_size == SIZE and sample.synthetic_pose
    model_input = default_input_config()
    model_input.image_size = SIZE
    config = sample.input_config(model_input)
    assert config.synthetic_pose.enabled and not model_input.synthetic_pose.enabled  # a copy
    reopened = PreparedDataset.open(sample.source)
    assert reopened.files("train") == sample.files("train")


def test_globs_keep_working_without_a_manifest(sample):
    folder = sample.source
    dataset = PreparedDataset.open(
        f"{folder}/train-*.tfrecord",
        synthetic_pose=True,
        other_patterns={"val": f"{folder}/val-*.tfrecord"},
    )
    assert dataset.splits == ("train", "val") and dataset.records("train") is None
    assert dataset.files("train") == sample.files("train") and dataset.synthetic_pose


@pytest.mark.parametrize(
    "call, problem",
    [
        (
            lambda d: PreparedDataset.open(d.source, synthetic_pose=False),
            "manifest says synthetic_pose=true",
        ),
        (
            lambda d: PreparedDataset.open(d.source, other_patterns={"val": "x-*"}),
            "lists its own splits",
        ),
        (lambda d: d.files("heldout"), "no split 'heldout'; it has train, val, test"),
        (
            lambda d: d.input_config(default_input_config()),
            "records are 32 px, smaller than the model's 256 px",
        ),
    ],
)
def test_contradictions_are_one_error_naming_the_folder(sample, call, problem):
    with pytest.raises(BadConfigError, match=problem) as error:
        call(sample)
    assert error.value.source == sample.source


@pytest.mark.parametrize(
    "manifest, problem",
    [
        (None, "no manifest.json: not a dataset folder"),
        ("[1, 2]", "not a gfrnet_tf.prepared manifest"),
        ("{not json", "not a readable manifest"),
        (json.dumps({"format": "gfrnet_tf.prepared", "schema_version": 7}), "schema version 7"),
        (
            json.dumps({"format": "gfrnet_tf.prepared", "schema_version": 1, "splits": {}}),
            "no splits",
        ),
        (
            json.dumps(
                {
                    "format": "gfrnet_tf.prepared",
                    "schema_version": 1,
                    "splits": {"train": {"shards": ["../../etc/passwd"], "records": 1}},
                }
            ),
            "shard name ../../etc/passwd is not the name of a file of the folder",
        ),
        (
            json.dumps(
                {
                    "format": "gfrnet_tf.prepared",
                    "schema_version": 1,
                    "image_size": "256",
                    "splits": {"train": {"shards": [], "records": 0}},
                }
            ),
            "image_size must be a positive",
        ),
    ],
)
def test_bad_manifests_are_refused_by_name(tmp_path, manifest, problem):
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(BadConfigError, match=problem):
        PreparedDataset(tmp_path)


def test_write_manifest_is_atomic_and_round_trips(sample, tmp_path):
    shutil.copy(sample.files("test")[0], tmp_path / "a.tfrecord")  # 3 records
    write_manifest(
        tmp_path, {"train": {"shards": ["a.tfrecord"], "records": 3}}, 64, False, note="x"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tfrecord", "manifest.json"]
    dataset = PreparedDataset(tmp_path)
    assert dataset.records("train") == 3 and dataset.image_size == 64 and not dataset.synthetic_pose
    assert json.loads((tmp_path / "manifest.json").read_text())["note"] == "x"


def _tampered(sample, tmp_path, change):
    """A copy of the sample folder whose manifest `change(manifest)` edited in place."""
    folder = tmp_path / "tampered"
    shutil.copytree(sample.source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _set_records(split, records):
    return lambda manifest: manifest["splits"][split].update(records=records)


def _list_again(split, other):
    def change(manifest):
        manifest["splits"][split]["shards"].append(manifest["splits"][other]["shards"][0])

    return change


@pytest.mark.parametrize(
    "change, use, problem",
    [
        (
            _set_records("train", 1),  # would give 1 step per epoch
            "records",
            "split 'train' states 1 records, its shards hold 6 (counted from their record "
            "headers): the manifest does not describe these shards; run gfrnet-prepare again",
        ),
        (
            _set_records("train", 10**30),  # would give a 30-digit step count
            "records",
            f"split 'train' states {10**30} records, its shards hold 6",
        ),
        (
            _set_records("test", 4),
            "files",
            "split 'test' states 4 records, its shards hold 3",
        ),
        (
            lambda m: m.update(shards={"test-00000-of-00001.tfrecord": 2}),
            "files",
            "states 2 records for shard test-00000-of-00001.tfrecord, which holds 3",
        ),
        (
            _list_again("test", "test"),  # evaluated twice
            "open",
            "split 'test' lists shard 'test-00000-of-00001.tfrecord' twice: a record would "
            "count twice, or test data would leak into training; list each shard once",
        ),
        (
            _list_again("train", "test"),  # test data leaking into training
            "open",
            "shard 'test-00000-of-00001.tfrecord' is listed in split 'train' and in 'test'",
        ),
        (
            lambda m: m["splits"]["train"]["shards"].append("train\x00.tfrecord"),
            "open",
            "split 'train': shard name train\\x00.tfrecord is not the name of a file",
        ),
    ],
)
def test_a_tampered_manifest_is_refused_in_one_line(sample, tmp_path, change, use, problem):
    folder = _tampered(sample, tmp_path, change)
    with pytest.raises(BadConfigError) as error:
        dataset = PreparedDataset(folder)
        getattr(dataset, use)("train" if problem.startswith("split 'train'") else "test")
    assert error.value.source == str(folder / "manifest.json")
    assert error.value.problem.startswith(problem), error.value.problem
    assert "\n" not in error.value.problem


def test_a_deeply_nested_manifest_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BadConfigError, match="not a manifest: its JSON is nested too deeply"):
        PreparedDataset(tmp_path)


def test_training_refuses_a_manifest_that_understates_its_records_before_building(sample, tmp_path):
    folder = _tampered(sample, tmp_path, _set_records("train", 1))
    with pytest.raises(BadConfigError, match="split 'train' states 1 records"):
        fit.train(_tiny_config(steps_per_epoch=0), tmp_path / "run", PreparedDataset(folder))
    assert not (tmp_path / "run").exists()


def _tiny_config(**train):
    config = load_config("smoke")
    config.input.image_size = SIZE
    config.model.update(TINY)
    config.train.update(
        dict(warp_pretrain_epochs=0, epochs=1, checkpoint_every=2, summary_every=2, **train)
    )
    return config


@pytest.mark.slow
def test_train_in_process_takes_one_pass_from_the_manifest_and_refuses_another_model(
    sample, tmp_path
):
    from gfrnet_tf.errors import BadModelFileError

    # steps_per_epoch 0: one pass = 6 pairs / batch 2 = 3 steps, rounded up to 2-step intervals.
    model = fit.train(_tiny_config(steps_per_epoch=0), tmp_path, sample, verbose=0)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["steps_per_epoch"] == 4 and saved["input"]["synthetic_pose"]["enabled"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000002.weights.h5",
        "step-00000004.weights.h5",
    ]
    assert int(model.g_optimizer.iterations.numpy()) == 4
    before = (tmp_path / "config.json").read_bytes()
    other = _tiny_config(steps_per_epoch=0)
    other.model.widths = (8, 8, 8, 8, 16)
    with pytest.raises(BadModelFileError, match="backup"):
        fit.train(other, tmp_path, sample, verbose=0)
    assert (tmp_path / "config.json").read_bytes() == before  # nothing rewritten


@pytest.mark.slow
def test_a_validation_split_smaller_than_a_batch_is_validated_as_one_smaller_batch(tmp_path):
    """What a small collection's gfrnet-prepare makes (one validation pair): gfrnet-train
    once refused it ("1 validation records, fewer than one batch of 2", with a Python list
    as the file name)."""
    small = write_sample_dataset(
        tmp_path / "data", SIZE, (Split("train", 4, 1, 1), Split("val", 1, 1, 2))
    )
    inputs = fit.check_inputs(_tiny_config(steps_per_epoch=2), small)
    assert (inputs.val_input.batch_size, inputs.val_steps) == (1, 1)
    fit.train(_tiny_config(steps_per_epoch=2), tmp_path / "run", small, verbose=0)
    assert os.listdir(tmp_path / "run" / "checkpoints") == ["step-00000002.weights.h5"]
