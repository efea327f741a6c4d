"""The dataset folder as the handle: manifest reading, contradictions, and training on it
in-process."""

import json

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
            "shard names must be files of the folder",
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


def test_write_manifest_is_atomic_and_round_trips(tmp_path):
    write_manifest(
        tmp_path, {"train": {"shards": ["a.tfrecord"], "records": 4}}, 64, False, note="x"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    dataset = PreparedDataset(tmp_path)
    assert dataset.records("train") == 4 and dataset.image_size == 64 and not dataset.synthetic_pose
    assert json.loads((tmp_path / "manifest.json").read_text())["note"] == "x"


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
