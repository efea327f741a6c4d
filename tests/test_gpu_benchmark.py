"""benchmarks/gpu.py: the analytic FLOP count against TF's profiler, and the --smoke table."""

import math

import pytest
import tensorflow as tf

from benchmarks import gpu
from gfrnet_tf.configs import load_config
from gfrnet_tf.models.gfrnet import build_gfrnet
from support import run_module


def test_analytic_count_is_the_papers_at_256_px():
    config = load_config("paper512")
    config.model.vgg_face_weights = "random"
    flops = gpu.analytic_forward_flops(config.model, 256)
    # The figures for pix2pix widths: WarpNet ~8.1, RecNet ~12.2 GFLOP per pair.
    assert flops["warpnet"] / 1e9 == pytest.approx(8.1, abs=0.05)
    assert flops["recnet"] / 1e9 == pytest.approx(12.2, abs=0.05)
    # VGG16's convolutions to conv4_3: 15.5 GMAC for all 13 at 224 px, of which conv5 is
    # 1.39 GMAC; (256/224)^2 x (15.35 - 1.39) x 2 = 36.5 GFLOP.
    assert flops["perceptual_network"] / 1e9 == pytest.approx(36.5, abs=0.5)


def test_analytic_forward_count_matches_the_profiler_at_32_px():
    config = load_config("paper512")
    config.model.update(
        widths=(64, 128, 256, 512, 512),
        local_size=32,
        vgg_face_weights="random",
        perceptual_layer="conv4_3",
    )
    model = build_gfrnet(config.model)
    model.build({"degraded": (None, 32, 32, 3), "guide": (None, 32, 32, 3)})
    analytic = gpu.analytic_forward_flops(config.model, 32)
    shapes = {
        "warpnet": (32, 32, 6),
        "recnet": (32, 32, 6),
        "global_discriminator": (32, 32, 9),
        "local_discriminator": (32, 32, 9),
        "perceptual_network": (32, 32, 3),
    }
    for name, shape in shapes.items():
        counted = gpu.counted_forward_flops(getattr(model, name), shape)
        # The profiler also counts the element-wise ops (norms, activations, biases, the
        # VGG preprocessing): a few percent on top of the convolutions, never less.
        assert 1.0 <= counted / analytic[name] < 1.05, (name, counted, analytic[name])


def _table(output):
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return header, [dict(zip(header, row)) for row in rows]


def _number(text):
    return float(text.rstrip("%"))


@pytest.mark.slow
def test_smoke_run_prints_the_table_with_finite_positive_figures():
    # Without the XLA rows: compiling the whole train step takes minutes on a CPU. One batch
    # size (2: more than one pair per step), since each row traces the step anew (~9 s).
    result = run_module(
        "benchmarks.gpu",
        "--smoke",
        "--precisions",
        "fp32,mixed,bf16",
        "--batch_sizes",
        "2",
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header, rows = _table(result.stdout)
    assert tuple(header) == gpu.COLUMNS
    assert {(row["precision"], row["batch"]) for row in rows} == {
        (p, "2") for p in ("fp32", "mixed", "bf16")
    }
    for row in rows:
        for column in ("steps/s", "images/s", "host CPU-s/step", "TFLOP/s", "utilisation"):
            value = _number(row[column])
            assert math.isfinite(value) and value > 0, (column, row)
        assert row["peak memory"] == "n/a (CPU)"
    lines = result.stdout.splitlines()
    assert any("bf16 rows: TF bf16 matmul" in line and "CPU bf16: " in line for line in lines)
    assert any(line.startswith("FLOPs per image pair: train step ") for line in lines)
    assert any(line.startswith("input pipeline (Eq. 4 + synthetic pose") for line in lines)
    assert any(line.startswith("host cores one such device needs") for line in lines)
    assert sum("load average" in line for line in lines) >= 2
    assert any(line.startswith("PyTorch twin") for line in lines)


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is present")
def test_asking_for_a_gpu_without_one_is_one_error_line(capsys):
    assert gpu.main(["--device", "gpu"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device gpu: TensorFlow sees no GPU")
