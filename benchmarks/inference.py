"""Inference speed of every deployment path of GFRNet in one run, with file sizes and fidelity.

Latency at batch 1 and throughput at batch `--batch` (images/s), 256x256 by default, for:
Keras eager, `tf.function`, XLA, the exported SavedModel (`serving_default`, uint8 in/out),
TFLite fp32/fp16/int8 through LiteRT's XNNPACK at 1 and 2 threads, each with and without
the exact transposed-conv rewrite (`gfrnet_tf.export.transpose_conv`; at `--batch` with
it only, since every TFLite batch size is its own conversion), and the PyTorch
twin (`benchmarks/torch_reference.py`, same weights). The model has the paper's pix2pix
widths (`--width_scale` shrinks them for a quick run) and random weights: speed does not
depend on the values. TF and torch use 2 threads. Variants are timed round-robin and the
best round is reported (see `benchmarks/warp.py`); ratios are to PyTorch in the same run.
"PSNR vs Keras" is each output's fidelity to the Keras model's on the bundled sample
face (on the [0, 1] scale; inf = identical), since no trained weights ship with the repo.

    python -m benchmarks.inference [--size 256] [--batch 8] [--rounds 5] [--batch_rounds 2]
        [--width_scale 1.0] [--quantizations fp32 fp16 int8] [--workdir DIR]
    python -m benchmarks.inference --quality_model runs/smoke --size 64 \
        --quality_data 'data/test-*.tfrecord' --calibration_data 'data/val-*.tfrecord'
        [--calibration_steps 16]

`--workdir` keeps the SavedModel and the .tflite files and reuses them on the next run
(the conversions of the ~94M-parameter model take most of a first run).

    python -m benchmarks.inference --bf16 [--size 256] [--batch 8] [--rounds 5]
        [--batch_rounds 2] [--bf16_model RUN]

`--bf16` instead times float32 against `mixed_bfloat16` (`gfrnet_tf.precision`; run whether
or not this CPU has bf16 instructions, the header says which) for `tf.function` and the
exported SavedModel (uint8 in/out), at batch 1 and `--batch`, all four round-robin, and
prints each bf16 path's speed-up and how far its uint8 `restored` is from float32's on the
bundled face, in grey levels. `--bf16_model` takes a trained model (at its own size)
instead of random pix2pix-width weights, whose grey-level figure then means something.

With `--quality_model RUN --quality_data 'test-*.tfrecord'` it instead measures what
quantisation costs a trained model: PSNR against the ground truth of the held-out pairs
(evaluation pipeline, seeded degradations) for Keras and TFLite fp32/fp16/int8 (int8
calibrated on `--calibration_steps` pairs of `--calibration_data`), and the change from Keras.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
import torch

from benchmarks.input_pipeline import uptime
from benchmarks.torch_reference import TorchGFRNet, twin_of
from benchmarks.warp import time_round_robin
from gfrnet_tf import precision
from gfrnet_tf.data import default_input_config, make_dataset
from gfrnet_tf.data.images import to_model_range
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.export.savedmodel import infer_uint8
from gfrnet_tf.export.tflite import convert_to_tflite, litert_interpreter, run_tflite
from gfrnet_tf.io import load_image
from gfrnet_tf.loading import load_gfrnet
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.layers import PIX2PIX_WIDTHS

THREADS = 2
SAMPLE_FACE = Path(__file__).parents[1] / "gfrnet_tf" / "sample_data" / "astronaut_face.png"


def sample_pair(size):
    """uint8 `[1, S, S, 3]` degraded (4x down/up-sampled) face and its mirrored guide."""
    face = tf.image.resize(load_image(SAMPLE_FACE)[None], (size, size), antialias=True)
    small = tf.image.resize(face, (size // 4, size // 4), antialias=True)
    degraded = tf.image.resize(small, (size, size), method="bicubic")
    as_uint8 = lambda x: tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8).numpy()  # noqa: E731
    return as_uint8(degraded), as_uint8(face[:, :, ::-1])


def psnr(a, b):
    """PSNR (dB) of two `[-1, 1]` arrays on the `[0, 1]` scale."""
    mse = np.mean(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) / 2.0) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def folder_size(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def tf_variants(model, saved_model, inputs, uint8_inputs):
    """`{name: callable -> restored [-1, 1] numpy}` for the TensorFlow paths."""
    graph = tf.function(lambda x: model(x, training=False))
    xla = tf.function(lambda x: model(x, training=False), jit_compile=True)
    serve = saved_model.signatures["serving_default"]
    return {
        "keras eager": lambda: model(inputs, training=False)["restored"].numpy(),
        "tf.function": lambda: graph(inputs)["restored"].numpy(),
        "xla": lambda: xla(inputs)["restored"].numpy(),
        "savedmodel (uint8)": lambda: to_model_range(serve(**uint8_inputs)["restored"]).numpy(),
    }


def torch_variant(model, inputs):
    twin = TorchGFRNet(twin_of(model.warpnet), twin_of(model.recnet)).eval()
    degraded, guide = (
        torch.from_numpy(inputs[k].numpy()).permute(0, 3, 1, 2).contiguous()
        for k in ("degraded", "guide")
    )

    def run():
        with torch.no_grad():
            return twin(degraded, guide)[2].permute(0, 2, 3, 1).numpy()

    return {"pytorch": run}


def tflite_variants(models, inputs):
    """One LiteRT interpreter per (model, threads); the batch axis is resized to the input's."""
    variants = {}
    for (quantization, rewrite), flatbuffer in models.items():
        for threads in (1, 2):
            interpreter = litert_interpreter(flatbuffer, num_threads=threads)
            name = f"tflite {quantization} {'rewrite' if rewrite else 'tconv'} {threads}t"
            variants[name] = lambda i=interpreter: run_tflite(
                i, inputs["degraded"].numpy(), inputs["guide"].numpy()
            )["restored"]
    return variants


def convert_all(model, size, batch, quantizations, rewrites, calibration, workdir):
    """`{(quantization, rewrite): flatbuffer}` and file sizes; files in `workdir` are reused.

    The batch is part of the TFLite model: the warp reshapes by it, and a converted
    dynamic batch needs a Flex op, so batch 1 and `--batch` are separate conversions.
    """
    models, sizes = {}, {}
    for quantization in quantizations:
        for rewrite in rewrites:
            path = (
                Path(workdir)
                / f"{quantization}-{'rewrite' if rewrite else 'tconv'}-b{batch}.tflite"
            )
            start = time.perf_counter()
            if not path.is_file():
                path.write_bytes(
                    convert_to_tflite(
                        model,
                        size,
                        quantization,
                        representative_data=calibration,
                        batch_size=batch,
                        rewrite_transpose_conv=rewrite,
                    )
                )
            models[(quantization, rewrite)] = path.read_bytes()
            sizes[f"tflite {quantization} {'rewrite' if rewrite else 'tconv'}"] = (
                path.stat().st_size
            )
            print(f"  {path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return models, sizes


def quantisation_quality(model_path, data_pattern, calibration_pattern, size, calibration_steps):
    """Prints PSNR vs ground truth of Keras and each TFLite variant on held-out pairs."""
    model = load_gfrnet(model_path).model
    config = default_input_config()
    config.image_size = size
    config.batch_size = 1
    pairs = list(make_dataset(data_pattern, config, training=False).as_numpy_iterator())
    calibration = [
        inputs
        for inputs, _ in itertools.islice(
            make_dataset(calibration_pattern, config, training=False).as_numpy_iterator(),
            calibration_steps,
        )
    ]
    runners = {
        "keras": lambda d, g: model({"degraded": d, "guide": g}, training=False)["restored"].numpy()
    }
    for quantization in ("fp32", "fp16", "int8"):
        interpreter = litert_interpreter(
            convert_to_tflite(model, size, quantization, representative_data=calibration)
        )
        runners[f"tflite {quantization}"] = lambda d, g, i=interpreter: run_tflite(i, d, g)[
            "restored"
        ]
    scores = {
        name: np.mean(
            [
                psnr(run(inputs["degraded"], inputs["guide"]), targets["target"])
                for inputs, targets in pairs
            ]
        )
        for name, run in runners.items()
    }
    print(f"{len(pairs)} held-out pairs, {size}x{size}; PSNR vs ground truth (dB), change vs Keras")
    for name, score in scores.items():
        print(f"{name:<14} {score:8.3f} {score - scores['keras']:+9.4f}")


def grey_levels(a, b):
    """(max, mean) absolute difference of two uint8 arrays, in grey levels."""
    difference = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
    return int(difference.max()), float(difference.mean())


def precision_models(model_path, size, width_scale):
    """({"fp32": model, "bf16": model}, size): the same float32 weights computing in each
    dtype, at the trained model's size if there is one."""
    if model_path:
        loaded = {
            name: load_gfrnet(model_path, policy)
            for name, policy in (("fp32", precision.FLOAT32), ("bf16", precision.BFLOAT16))
        }
        return {name: t.model for name, t in loaded.items()}, loaded["fp32"].image_size or size
    widths = tuple(max(1, int(w * width_scale)) for w in PIX2PIX_WIDTHS)
    models = {}
    for name, policy in (("fp32", precision.FLOAT32), ("bf16", precision.BFLOAT16)):
        keras.utils.set_random_seed(0)
        with precision.policy_scope(policy):
            models[name] = build_gfrnet(
                {"widths": widths, "discriminator_widths": (8, 16), "local_size": 16}
            )
        models[name].build({"degraded": (None, size, size, 3), "guide": (None, size, size, 3)})
    models["bf16"].set_weights(models["fp32"].get_weights())
    return models, size


def precision_comparison(args):
    """`--bf16`: float32 vs bf16 for tf.function and SavedModel, speed and grey levels."""
    models, size = precision_models(args.bf16_model, args.size, args.width_scale)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gfrnet-bench-"))
    native, how = precision.cpu_bf16_support()
    print(
        f"GFRNet inference fp32 vs bf16, {size}x{size}, "
        f"{args.bf16_model or f'random weights, width scale {args.width_scale}'}, {THREADS} "
        f"threads; CPU bf16: {'native' if native else 'emulated'} ({how}); {uptime()}",
        flush=True,
    )
    serving = {}
    for name, model in models.items():
        path = export_savedmodel(model, workdir / f"savedmodel-{name}", size, version=1)
        serving[name] = tf.saved_model.load(str(path))
    degraded, guide = sample_pair(size)
    results = {}
    for batch, rounds in ((1, args.rounds), (args.batch, args.batch_rounds)):
        uint8 = {"degraded": np.repeat(degraded, batch, 0), "guide": np.repeat(guide, batch, 0)}
        graphs = {
            name: tf.function(lambda x, m=model: infer_uint8(m, x["degraded"], x["guide"]))
            for name, model in models.items()
        }
        signatures = {name: m.signatures["serving_default"] for name, m in serving.items()}
        variants = {f"tf.function {n}": lambda g=g: g(uint8) for n, g in graphs.items()}
        variants.update({f"savedmodel {n}": lambda f=f: f(**uint8) for n, f in signatures.items()})
        outputs = {name: fn()["restored"].numpy() for name, fn in variants.items()}
        results[batch] = (time_round_robin(variants, rounds), outputs)
        print(f"  timed batch {batch} ({uptime()})", flush=True)
    (best1, outputs), (best_n, _) = results[1], results[args.batch]
    print(
        f"\n{'variant':<18} {'b1 ms':>8} {f'b{args.batch} img/s':>10} {'bf16 speed-up':>14} "
        f"{'vs fp32: max / mean grey levels':>32}"
    )
    for name in best1:
        path, dtype = name.rsplit(" ", 1)
        fp32 = f"{path} fp32"
        speed_up = (
            f"{best1[fp32] / best1[name]:.2f}x / {best_n[fp32] / best_n[name]:.2f}x"
            if dtype == "bf16"
            else "-"
        )
        most, mean = grey_levels(outputs[name], outputs[fp32])
        print(
            f"{name:<18} {best1[name] * 1e3:>8.1f} {args.batch / best_n[name]:>10.2f} "
            f"{speed_up:>14} {f'{most} / {mean:.3f}':>32}"
        )
    print(f"end {uptime()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds at batch 1")
    parser.add_argument("--batch_rounds", type=int, default=2, help="timed rounds at --batch")
    parser.add_argument("--width_scale", type=float, default=1.0)
    parser.add_argument("--quantizations", nargs="+", default=["fp32", "fp16", "int8"])
    parser.add_argument("--workdir", default=None, help="keep the exported files here")
    parser.add_argument("--quality_model", default=None, help="trained .keras/checkpoint/run")
    parser.add_argument("--quality_data", default=None, help="held-out TFRecord pattern")
    parser.add_argument(
        "--calibration_data", default=None, help="int8 calibration TFRecord pattern"
    )
    parser.add_argument("--calibration_steps", type=int, default=16)
    parser.add_argument("--bf16", action="store_true", help="time float32 against bf16 only")
    parser.add_argument("--bf16_model", default=None, help="with --bf16: a trained model")
    args = parser.parse_args()
    if args.quality_model:
        quantisation_quality(
            args.quality_model,
            args.quality_data,
            args.calibration_data,
            args.size,
            args.calibration_steps,
        )
        return

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(THREADS)
    if args.bf16:
        precision_comparison(args)
        return
    # Seeded: files reused from --workdir must hold the weights this run builds.
    keras.utils.set_random_seed(0)
    widths = tuple(max(1, int(w * args.width_scale)) for w in PIX2PIX_WIDTHS)
    model = build_gfrnet({"widths": widths, "discriminator_widths": (8, 16), "local_size": 16})
    size = args.size
    model.build({"degraded": (None, size, size, 3), "guide": (None, size, size, 3)})
    degraded, guide = sample_pair(size)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gfrnet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"GFRNet inference, {size}x{size}, widths {widths}, {THREADS} threads (TF, torch); "
        f"files in {workdir}",
        flush=True,
    )

    saved_path = workdir / "savedmodel" / "1"
    if not saved_path.is_dir():
        export_savedmodel(model, workdir / "savedmodel", size, version=1)
    sizes = {"savedmodel (uint8)": folder_size(saved_path)}
    calibration = [
        {"degraded": to_model_range(degraded).numpy(), "guide": to_model_range(guide).numpy()}
    ]
    saved_model = tf.saved_model.load(str(saved_path))

    results = {}
    # At --batch only the rewritten TFLite models: the conversions dominate the run time.
    for batch, rounds, rewrites in (
        (1, args.rounds, (True, False)),
        (args.batch, args.batch_rounds, (True,)),
    ):
        tflite_models, tflite_sizes = convert_all(
            model, size, batch, args.quantizations, rewrites, calibration, workdir
        )
        if batch == 1:
            sizes.update(tflite_sizes)
        uint8_inputs = {
            "degraded": np.repeat(degraded, batch, 0),
            "guide": np.repeat(guide, batch, 0),
        }
        inputs = {k: to_model_range(v) for k, v in uint8_inputs.items()}
        variants = {
            **torch_variant(model, inputs),
            **tf_variants(model, saved_model, inputs, uint8_inputs),
            **tflite_variants(tflite_models, inputs),
        }
        reference = model(inputs, training=False)["restored"].numpy()
        fidelity = {name: psnr(fn(), reference) for name, fn in variants.items()}
        best = time_round_robin(variants, rounds)
        results[batch] = (best, fidelity)
        print(f"  timed batch {batch}", flush=True)

    best1, fidelity = results[1]
    best_n, _ = results[args.batch]
    torch1, torch_n = best1["pytorch"], best_n["pytorch"]
    print(
        f"\n{'variant':<28} {'b1 ms':>8} {'/torch':>7} {f'b{args.batch} img/s':>10} "
        f"{'/torch':>7} {'PSNR vs Keras':>14} {'size MB':>8}"
    )
    for name in best1:
        size_name = name.rsplit(" ", 1)[0] if name.startswith("tflite") else name
        file_size = f"{sizes[size_name] / 1e6:.0f}" if size_name in sizes else "-"
        throughput = (
            f"{args.batch / best_n[name]:>10.2f} {torch_n / best_n[name]:>7.2f}"
            if name in best_n
            else f"{'-':>10} {'-':>7}"
        )
        print(
            f"{name:<28} {best1[name] * 1e3:>8.1f} {best1[name] / torch1:>7.2f} "
            f"{throughput} {fidelity[name]:>14.1f} {file_size:>8}"
        )


if __name__ == "__main__":
    main()
