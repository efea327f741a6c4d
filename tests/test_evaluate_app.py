"""Evaluation reports and the gfrnet-evaluate command on a tiny shard."""

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data import default_input_config, encode_pair, make_dataset, write_shard
from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.evaluation import protocol, report
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.io import load_image
from gfrnet_tf.loading import TrainedModel
from gfrnet_tf.restoration.restorer import Restorer
from gfrnet_tf.visualize import DISPLAY_SIZE, enlargement
from support import built_gfrnet, run_module


def test_report_files_round_trip(tmp_path):
    rows = [
        {"model": "full", "psnr_4x": 27.123456, "landmark_error_warped": 0.0412345},
        {"model": "-WG", "psnr_4x": 25.5, "landmark_error_warped": float("nan")},
    ]
    columns = ["model", "psnr_4x", "landmark_error_warped"]
    assert report.markdown_table(rows, columns).splitlines() == [
        "| model | psnr_4x | landmark_error_warped |",
        "|---|---|---|",
        "| full | 27.12 | 0.0412 |",
        "| -WG | 25.50 | n/a |",
    ]
    report.write_csv(tmp_path / "t.csv", rows, columns)
    with open(tmp_path / "t.csv") as stream:
        read = list(csv.DictReader(stream))
    assert float(read[0]["psnr_4x"]) == 27.123456 and read[1]["landmark_error_warped"] == ""
    report.write_json(tmp_path / "t.json", {"rows": rows})
    loaded = json.loads((tmp_path / "t.json").read_text())  # strict: no bare NaN
    assert loaded["rows"][0]["psnr_4x"] == 27.123456
    assert loaded["rows"][1]["landmark_error_warped"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json"]  # no temp left


class _WrongSizeModel(Restorer):
    """Fails like the SavedModel's in-graph size check does on images of another size."""

    def _run(self, degraded, guide):
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            (
                "Graph execution error:\n\nDetected at node assert_equal_3/Assert/Assert\n"
                "assertion failed: [degraded must be [batch, 256, 256, 3]] "
                "[Condition x == y did not "
                "hold element-wise:] [x (strided_slice_2:0) = ] [16 16 3]\n\t [[{{node ...}}]]"
            ),
        )


def test_protocol_rows_hand_values_and_a_failing_model_is_dropped():
    # Model-range images whose uint8 forms differ by exactly 5 levels: PSNR 34.1514 dB.
    target = np.full((2, 16, 16, 3), 100, np.uint8)
    points = np.tile(np.float32([[4.0, 4.0]]), (2, 68, 1))
    points[:, 45] = (14.0, 4.0)  # inter-ocular distance 10 px
    batch = (
        {"degraded": to_model_range(target + 5), "guide": to_model_range(target)},
        {
            "target": to_model_range(target),
            "landmarks": points + np.float32([0.0, 2.0]),
            "guide_landmarks": points,
        },
    )
    evaluation = protocol.evaluate(
        {
            "input": protocol.DegradedInput(),
            "wrong size": _WrongSizeModel(TrainedModel(Path("w.tflite"), "tflite", 256, None)),
        },
        lambda _: [batch],
        example_limit=1,
    )
    (row,) = evaluation.rows
    assert row["model"] == "input"
    for setting in protocol.SETTINGS:
        assert row[f"psnr_{setting}"] == pytest.approx(34.1514, abs=1e-4)
    assert row["landmark_error_guide"] == pytest.approx(0.2)  # 2 px off / 10 px
    assert np.isnan(row["landmark_error_warped"]) and np.isnan(row["flow_epe_px"])
    assert evaluation.failures == {
        "wrong size": "cannot run on 16x16 images: degraded must be [batch, 256, 256, 3]"
    }
    assert len(evaluation.examples["input"]) == 1 and len(evaluation.examples["input"][0]) == 5


# A batch size that does not divide the test set: the last, partial batch must count too.
SIZE, PAIRS, BATCH = 32, 5, 2


def _pair(rng):
    """A smooth 32 px "face" with 68 landmarks spread over its middle."""
    image = tf.image.resize(rng.uniform(0, 255, (1, 6, 6, 3)), (SIZE, SIZE), "bicubic")[0]
    landmarks = rng.uniform(8, SIZE - 8, (68, 2)).astype(np.float32)
    landmarks[[36, 45]] = [[10.0, 12.0], [22.0, 12.0]]  # outer eye corners 12 px apart
    return np.clip(image.numpy(), 0, 255).astype(np.uint8), landmarks


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One gfrnet-evaluate run: a tiny model, its SavedModel export, a missing model, a good
    and a corrupt shard."""
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    records = []
    for _ in range(PAIRS):
        (target, points), (guide, guide_points) = _pair(rng), _pair(rng)
        records.append(encode_pair(target, guide, points, guide_points))
    write_shard(root / "test-0.tfrecord", records)
    write_shard(root / "test-1.tfrecord", [b"not a tf.Example"])
    model = built_gfrnet(size=SIZE)
    model.save(root / "tiny.keras")
    export_savedmodel(model, root / "served", SIZE)
    done = run_module(
        "gfrnet_tf.apps.evaluate",
        f"--model={root / 'tiny.keras'}",
        f"--model={root / 'missing.keras'}",
        f"--model={root / 'served'}",
        "--names=tiny,gone,served",
        f"--data={root / 'test-*.tfrecord'}",
        f"--output={root / 'out'}",
        f"--image_size={SIZE}",
        f"--batch_size={BATCH}",
        "--synthetic_pose",
        "--examples=3",
        timeout=300,
    )
    return root, done


def _direct_blind_measures(root):
    """The blind-setting measures computed here, independently of the evaluation code."""
    config = default_input_config()
    config.image_size, config.batch_size = SIZE, BATCH
    config.degradation.mode = "seeded"
    config.synthetic_pose.enabled = True
    config.deterministic = True
    model = keras.saving.load_model(root / "tiny.keras")
    psnr, guide_error, epe = [], [], []
    for inputs, targets in make_dataset(str(root / "test-0.tfrecord"), config, training=False):
        as_uint8 = {k: to_uint8(v).numpy() for k, v in inputs.items()}
        outputs = model({k: to_model_range(v) for k, v in as_uint8.items()}, training=False)
        restored = to_uint8(outputs["restored"]).numpy().astype(np.float64)
        target = to_uint8(targets["target"]).numpy().astype(np.float64)
        psnr += list(10 * np.log10(255.0**2 / ((restored - target) ** 2).mean(axis=(1, 2, 3))))
        points, guide_points = targets["landmarks"].numpy(), targets["guide_landmarks"].numpy()
        eyes = np.linalg.norm(guide_points[:, 45] - guide_points[:, 36], axis=-1)
        guide_error += list(np.linalg.norm(points - guide_points, axis=-1).mean(-1) / eyes)
        pixels = (outputs["flow"].numpy() - targets["flow"].numpy()) * (SIZE - 1) / 2.0
        epe += list(np.linalg.norm(pixels, axis=-1).mean(axis=(1, 2)))
    assert len(psnr) == PAIRS
    return {
        "psnr_blind": np.mean(psnr),
        "landmark_error_guide": np.mean(guide_error),
        "flow_epe_px": np.mean(epe),
    }


def test_evaluate_writes_table_csv_json_png_equal_to_a_direct_computation(evaluated):
    root, done = evaluated
    out = root / "out"
    assert done.returncode == 1, done.stderr  # the missing model and the corrupt record
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, done.stderr
    assert "missing.keras: no such file" in errors[0]
    assert "1 corrupt record(s) skipped" in errors[1]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "examples_served.png",
        "examples_tiny.png",
        "results.csv",
        "results.json",
    ]

    with open(out / "results.csv") as stream:
        rows = {row["model"]: row for row in csv.DictReader(stream)}
    assert list(rows) == ["degraded input", "tiny", "served"]
    expected = _direct_blind_measures(root)
    for column, value in expected.items():
        assert float(rows["tiny"][column]) == pytest.approx(value, rel=1e-4, abs=1e-4), column
    assert rows["degraded input"]["landmark_error_warped"] == ""  # no model, no warp
    # The export returns the flow, so its alignment is measured, equal to the Keras model's.
    for column in ("landmark_error_warped", "flow_epe_px"):
        assert float(rows["served"][column]) == pytest.approx(float(rows["tiny"][column]), abs=1e-4)
    for setting in ("4x", "8x", "blind"):
        assert 5.0 < float(rows["tiny"][f"psnr_{setting}"]) < 60.0
        assert -1.0 <= float(rows["tiny"][f"ssim_{setting}"]) <= 1.0
    # Harder settings cost the input PSNR: 8x is worse than 4x.
    assert float(rows["degraded input"]["psnr_8x"]) < float(rows["degraded input"]["psnr_4x"])

    report_json = json.loads((out / "results.json").read_text())
    assert report_json["skipped_records"] == 1 and report_json["image_size"] == SIZE
    assert report_json["rows"][1]["psnr_blind"] == pytest.approx(float(rows["tiny"]["psnr_blind"]))
    assert f"| tiny | {float(rows['tiny']['psnr_4x']):.2f} |" in done.stdout
    grid = load_image(out / "examples_tiny.png")
    # 3 rows of I_d|I_g|I_w|Î|I enlarged to judge, under a label line, over a scale note.
    factor = enlargement(SIZE, DISPLAY_SIZE)
    assert grid.shape[1] == 5 * SIZE * factor + 4 * 4 and factor > 1
    assert grid.shape[0] > 3 * SIZE * factor + 2 * 4
