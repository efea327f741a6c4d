r"""GFRNet training speed on whatever devices TensorFlow sees, as one paste-ready table.

    python -m benchmarks.gpu [--device auto|cpu|gpu] [--batch_sizes 1,8] [--steps 10]
        [--precisions fp32,mixed,bf16,xla,mixed+xla,bf16+xla] [--peak_tflops 312] [--no_torch]
    python -m benchmarks.gpu --smoke        # the same code at 32 px on CPU, in seconds

The model is the paper configuration at pix2pix widths (`load_config("paper512")`: 256x256,
global and local PatchGANs) with the VGG-Face perceptual term on random weights of the real
shape (`vgg_face_weights="random"`), built by the training code (`fit.build_model`) and
stepped by Keras' own train function, as `fit` does, on one fixed batch (no input cost).
Rows: batch 1 and a larger batch; float32, `mixed_float16`, `mixed_bfloat16`, XLA
(`jit_compile`), each policy as `gfrnet-train --precision` sets it up; one device
and, with several, `MirroredStrategy` over all of them; with `TF_CONFIG` set, every row runs
under `MultiWorkerMirroredStrategy` (start the same command on every worker; worker 0
prints). Columns: steps/s, images/s, achieved TFLOP/s from the FLOPs counted in the traced
step (`tf.compat.v1.profiler`), utilisation against `--peak_tflops` (on CPU: the step's
FLOPs per CPU-second against numpy's float32 GEMM per CPU-second -- TensorFlow's bf16
matmul per CPU-second for the bf16 rows -- all measured in this run, so other load on the
machine cancels out), peak device memory. On CPU the bf16 rows run whether or not the CPU
has bf16 instructions (`gfrnet-train` would fall back to float32 without them); the
header says which.

Below the table: the FLOPs per step (counted, and the analytic forward count of each
network), the input pipeline's images/s on this host (real degradations and synthetic
pose), its ratio to what the fastest row consumes (below 1.0 the device waits for data)
and the host cores one device needs; the PyTorch twin's step (no VGG, as
`benchmarks/train_step.py`) against the same TF step without VGG, on CPU only. `--device gpu`
with no GPU is an error, never a silent CPU run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from benchmarks import input_pipeline
from gfrnet_tf import precision as precision_lib
from gfrnet_tf.configs import load_config
from gfrnet_tf.data import make_dataset
from gfrnet_tf.models import vgg_face
from gfrnet_tf.models.gfrnet import BLOCK_KEYS, MODEL_CONFIG_DEFAULTS
from gfrnet_tf.training import distribute, fit

# Row name: (Keras policy, XLA).
PRECISIONS = {
    "fp32": (precision_lib.FLOAT32, False),
    "mixed": (precision_lib.FLOAT16, False),
    "bf16": (precision_lib.BFLOAT16, False),
    "xla": (precision_lib.FLOAT32, True),
    "mixed+xla": (precision_lib.FLOAT16, True),
    "bf16+xla": (precision_lib.BFLOAT16, True),
}
COLUMNS = (
    "strategy",
    "replicas",
    "precision",
    "batch",
    "steps/s",
    "images/s",
    "host CPU-s/step",
    "TFLOP/s",
    "utilisation",
    "peak memory",
)
SMOKE_SIZE = 32


class DeviceError(Exception):
    """The devices asked for are not there: one line, exit status 2."""


# ------------------------------------------------------------------------------ FLOPs
def _conv_flops(size_out, kernel, channels_in, channels_out):
    """2 * multiply-adds of a convolution producing `size_out x size_out` pixels."""
    return 2 * size_out * size_out * kernel * kernel * channels_in * channels_out


def encoder_decoder_flops(widths, size, channels_in, channels_out, skips):
    """Forward FLOPs of `layers.EncoderDecoder` (4x4 stride-2 convs, mirrored transposed convs).

    A transposed conv costs what the conv it transposes costs: input pixels x 16 x C_in x C_out.
    """
    total, channels, side, encoder = 0, channels_in, size, []
    for width in widths:
        side //= 2
        total += _conv_flops(side, 4, channels, width)
        channels = width
        encoder.append(width)
    outputs = list(reversed(widths[:-1])) + [channels_out]
    for j, width in enumerate(outputs):
        if skips and j > 0:
            channels += encoder[-1 - j]
        total += _conv_flops(side, 4, channels, width)
        channels, side = width, side * 2
    return total


def patchgan_flops(widths, size, channels_in):
    """Forward FLOPs of `PatchDiscriminator`: stride-2 blocks, a stride-1 block, 1 logit."""
    total, channels = 0, channels_in
    for i, width in enumerate((*widths, 1)):
        stride = 1 if i >= len(widths) - 1 else 2
        size = (size + 2 - 4) // stride + 1
        total += _conv_flops(size, 4, channels, width)
        channels = width
    return total


def vgg_flops(size, output_layer):
    """Forward FLOPs of `VGGFace` up to `output_layer` (3x3 same convs, 2x2 pools between
    blocks)."""
    total, channels = 0, 3
    for name in vgg_face.LAYER_NAMES[: vgg_face.LAYER_NAMES.index(output_layer) + 1]:
        block = int(name[4])
        width = vgg_face._FILTERS[block]
        total += _conv_flops(size // 2 ** (block - 1), 3, channels, width)
        channels = width
    return total


def analytic_forward_flops(model_config, size):
    """Forward FLOPs per image pair of each network at `size` px (convolutions only)."""
    widths, d_widths = tuple(model_config.widths), tuple(model_config.discriminator_widths)
    counts = {
        "warpnet": encoder_decoder_flops(widths, size, 6, 2, skips=False),
        "recnet": encoder_decoder_flops(widths, size, 6, 3, skips=True),
        "global_discriminator": patchgan_flops(d_widths, size, 9),
        "local_discriminator": patchgan_flops(d_widths, model_config.local_size, 9),
    }
    if model_config.vgg_face_weights:
        counts["perceptual_network"] = vgg_flops(size, model_config.perceptual_layer)
    return counts


def graph_flops(concrete_function):
    """FLOPs of the ops of a traced function's graph, as `tf.compat.v1.profiler` counts them."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    stats = tf.compat.v1.profiler.profile(concrete_function.graph, options=options)
    return stats.total_float_ops


def counted_forward_flops(network, input_shape):
    """Counted forward FLOPs of one network at a static batch-1 `input_shape`."""
    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    return graph_flops(
        tf.function(lambda x: network(x, training=False)).get_concrete_function(spec)
    )


def counted_step_flops(model, batch):
    """Counted FLOPs of one `train_step` on `batch` (forward, backward, both optimizers)."""
    specs = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype), batch)
    return graph_flops(tf.function(model.train_step).get_concrete_function(specs))


# ------------------------------------------------------------------------------ setup
def choose_devices(device):
    """Hides or checks devices before TF initialises them; returns "GPU" or "CPU"."""
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
        return "CPU"
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError(
            "--device gpu: TensorFlow sees no GPU (check the CUDA driver and "
            "that this TensorFlow build has GPU support)"
        )
    return "GPU" if gpus else "CPU"


def benchmark_config(smoke):
    """The paper configuration with random VGG-Face weights; `smoke`: the same at 32 px."""
    config = load_config("paper512")
    config.model.vgg_face_weights = vgg_face.RANDOM_WEIGHTS
    if smoke:
        config.input.image_size = SMOKE_SIZE
        config.input.degradation.scale = (1.0, 2.0)
        config.input.degradation.blur = (0.0, 1.0)
        config.model.widths = (8, 16, 16, 16, 16)  # depth 5: 32 -> 1x1
        config.model.discriminator_widths = (8, 16, 16)  # 3 layers: 16 px local crops
        config.model.local_size = 16  # size / 2 as in the paper (and the PyTorch twin)
        config.model.perceptual_layer = "conv2_2"
    return config


def synthetic_batch(size, batch, seed=0):
    """One `(inputs, targets)` numpy batch: images in [-1, 1], landmarks in the middle."""
    rng = np.random.default_rng(seed)
    image = lambda: rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)  # noqa: E731
    points = lambda: rng.uniform(0.25 * size, 0.75 * size, (batch, 68, 2)).astype(np.float32)  # noqa: E731
    return (
        {"degraded": image(), "guide": image()},
        {"target": image(), "landmarks": points(), "guide_landmarks": points()},
    )


def uptime():
    return input_pipeline.uptime()


# ------------------------------------------------------------------------------ timing
def build(config, strategy, precision):
    """The training code's model (`fit.build_model`) under `precision`'s policy and XLA setting."""
    policy, xla = PRECISIONS[precision]
    config = config.copy_and_resolve_references()
    config.train.jit_compile = xla
    with precision_lib.policy_scope(policy):
        return fit.build_model(config, strategy, precision_lib.needs_loss_scaling(policy))


def time_train_step(model, strategy, size, batch_size, steps):
    """Steps/s of Keras' train function (as `fit` runs it), this process's CPU seconds per
    step (all threads: on CPU the compute, on a GPU the host's share) and peak device memory."""
    data = tf.data.Dataset.from_tensors(synthetic_batch(size, batch_size)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(data))
    model.make_train_function(force=True)
    step = model.train_function
    device = _memory_device()
    for _ in range(2):  # trace / compile, then one more to settle
        _sync(step(iterator))
    if device:
        tf.config.experimental.reset_memory_stats(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        logs = step(iterator)
    _sync(logs)
    rate = steps / (time.perf_counter() - start)
    cpu_seconds = (time.process_time() - start_cpu) / steps
    peak = tf.config.experimental.get_memory_info(device)["peak"] if device else None
    return rate, cpu_seconds, peak


def _sync(logs):
    """Waits for the step: reading a metric copies it to the host."""
    return float(np.mean(tf.nest.flatten(logs)[0]))


def _memory_device():
    """The device whose peak memory is reported (the first GPU; every replica holds the same)."""
    return "GPU:0" if tf.config.list_logical_devices("GPU") else None


def sgemm_rates(size=2048, repeats=5):
    """numpy's float32 GEMM on this host, best of `repeats`: (GFLOP/s on all cores, GFLOP per
    CPU-second). The second is a core's practical peak and, like the steps' CPU seconds,
    hardly moves with other load on the machine."""
    a = np.random.default_rng(0).standard_normal((size, size), np.float32)
    a @ a
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ a
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    flops = 2 * size**3 / 1e9
    return flops / min(wall), flops / min(cpu)


def tf_matmul_rates(dtype, size=2048, repeats=5):
    """TensorFlow's `size`^2 matmul in `dtype` on this host, best of `repeats`: (GFLOP/s on
    all cores, GFLOP per CPU-second), as `sgemm_rates`. The bf16 rows' practical peak."""
    matmul = tf.function(lambda a: tf.matmul(a, a))
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(0, 0)), dtype)
    matmul(a).numpy()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        matmul(a).numpy()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    flops = 2 * size**3 / 1e9
    return flops / min(wall), flops / min(cpu)


def pipeline_rate(config, batch_size, batches):
    """(images/s, images per CPU-second) of the real input pipeline (Eq. 4 + synthetic pose)."""
    input_config = config.input.copy_and_resolve_references()
    input_config.batch_size = batch_size
    input_config.synthetic_pose.enabled = True
    with tempfile.TemporaryDirectory() as folder:
        path = input_pipeline.write_shard(folder, 16, input_config.image_size)
        input_config.shuffle_buffer = 16
        dataset = make_dataset(path, input_config, training=True).repeat()
        return input_pipeline.throughput(dataset, batches, batch_size)


def torch_ratio(config, batch, steps):
    """(TF fp32 steps/s without VGG, PyTorch twin steps/s) on CPU, or None without torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from benchmarks import train_step

    config = config.copy_and_resolve_references()
    config.model.vgg_face_weights = ""
    # The twin mirrors the default blocks and image range; an activation costs alike.
    with config.unlocked():
        for key in (*BLOCK_KEYS, "image_range"):
            config.model[key] = MODEL_CONFIG_DEFAULTS[key]
    size = config.input.image_size
    strategy = tf.distribute.get_strategy()
    model = build(config, strategy, "fp32")
    tf_rate, _, _ = time_train_step(model, strategy, size, batch, steps)
    data = synthetic_batch(size, batch)
    torch_step = train_step.torch_step(model, data, size)
    torch_step()
    start = time.perf_counter()
    for _ in range(steps):
        torch_step()
    return tf_rate, steps / (time.perf_counter() - start)


# ------------------------------------------------------------------------------ report
def strategies(device_kind):
    """(label, strategy) rows: one device; all devices mirrored if several; or multi-worker."""
    if os.environ.get("TF_CONFIG"):
        return [("multi-worker", distribute.make_strategy("multiworker"))]
    rows = [("one device", tf.distribute.get_strategy())]
    devices = tf.config.list_logical_devices(device_kind)
    if device_kind == "GPU" and len(devices) > 1:
        rows.append(("mirrored", tf.distribute.MirroredStrategy()))
    return rows


def markdown_table(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join(["---"] * len(COLUMNS)) + " |"]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _utilisation(achieved_tflops, peak_tflops, gflops_per_cpu_second, core_peak):
    """Against `--peak_tflops`, or on CPU against `core_peak` (GFLOP per CPU-second)."""
    if core_peak:
        return f"{gflops_per_cpu_second / core_peak:.1%}"
    return f"{achieved_tflops / peak_tflops:.1%}" if peak_tflops else "n/a"


def _format_memory(peak):
    return "n/a (CPU)" if peak is None else f"{peak / 2**30:.2f} GiB"


def run(args):
    device_kind = choose_devices("cpu" if args.smoke else args.device)
    config = benchmark_config(args.smoke)
    size = config.input.image_size
    batch_sizes = [
        int(b) for b in (args.batch_sizes or ("1,2" if args.smoke else "1,8")).split(",")
    ]
    steps = args.steps or (2 if args.smoke else 10)
    precisions = (
        args.precisions.split(",")
        if args.precisions
        else (
            list(PRECISIONS)
            if device_kind == "GPU"
            else ["fp32", "mixed", "bf16", "xla"]
            if args.smoke
            else ["fp32", "bf16", "xla"]
        )
    )
    for name in precisions:
        if name not in PRECISIONS:
            raise DeviceError(f"--precisions: {name!r} is not one of {', '.join(PRECISIONS)}")
    print(f"start: {uptime()}", flush=True)
    peak_tflops, core_peaks = args.peak_tflops, {}
    peak_label = f"--peak_tflops {peak_tflops}" if peak_tflops else None
    if device_kind == "CPU" and not peak_tflops:
        # On CPU: achieved FLOPs per CPU-second of the step against the GEMM's per CPU-second.
        matmul_size = 1024 if args.smoke else 2048
        wall_gflops, core_peaks[precision_lib.FLOAT32] = sgemm_rates(matmul_size)
        bf16_wall, core_peaks[precision_lib.BFLOAT16] = tf_matmul_rates(tf.bfloat16, matmul_size)
        core_peaks[precision_lib.FLOAT16] = core_peaks[precision_lib.FLOAT32]
        native, how = precision_lib.cpu_bf16_support()
        peak_label = (
            f"numpy sgemm: {core_peaks[precision_lib.FLOAT32]:.1f} GFLOP per CPU-second "
            f"({wall_gflops:.1f} GFLOP/s wall on all cores); bf16 rows: TF bf16 matmul "
            f"{core_peaks[precision_lib.BFLOAT16]:.1f} GFLOP per CPU-second ({bf16_wall:.1f} "
            f"GFLOP/s wall); measured now, against the step's FLOPs per CPU-second. "
            f"CPU bf16: {'native' if native else 'emulated'} ({how})"
        )

    rows = []
    runs = strategies(device_kind)
    # Counted on its own one-device float32 model: a replicated model's step only traces
    # inside `strategy.run`.
    flops_per_image = counted_step_flops(
        build(config, tf.distribute.get_strategy(), "fp32"), synthetic_batch(size, 1)
    )
    for label, strategy in runs:
        for precision in precisions:
            model = build(config, strategy, precision)
            for batch in batch_sizes:
                global_batch = batch * strategy.num_replicas_in_sync
                rate, cpu_seconds, peak = time_train_step(
                    model, strategy, size, global_batch, steps
                )
                achieved = rate * global_batch * flops_per_image / 1e12
                rows.append(
                    {
                        "strategy": label,
                        "replicas": strategy.num_replicas_in_sync,
                        "precision": precision,
                        "batch": global_batch,
                        "steps/s": f"{rate:.3g}",
                        "images/s": f"{rate * global_batch:.3g}",
                        "host CPU-s/step": f"{cpu_seconds:.3g}",
                        "TFLOP/s": f"{achieved:.3g}",
                        "utilisation": _utilisation(
                            achieved,
                            peak_tflops,
                            flops_per_image * global_batch / cpu_seconds / 1e9,
                            core_peaks.get(PRECISIONS[precision][0]),
                        ),
                        "peak memory": _format_memory(peak),
                    }
                )
                print(f"  {label} {precision} batch {global_batch}: {rate:.3g} steps/s", flush=True)

    if _is_chief(strategy):
        report(args, config, rows, flops_per_image, peak_label, device_kind, batch_sizes, steps)


def _is_chief(strategy):
    return distribute.is_chief(strategy)


def report(args, config, rows, flops_per_image, peak_label, device_kind, batch_sizes, steps):
    size = config.input.image_size
    widths = "tiny widths (--smoke)" if args.smoke else "paper (pix2pix) widths"
    print(
        f"\nGFRNet train step, {size}x{size}, {widths}, "
        f"VGG-Face random weights; {device_kind}: {_device_names(device_kind)}; "
        f"tf {tf.__version__}; {os.cpu_count()} host cores; {uptime()}"
    )
    if peak_label:
        print(f"utilisation against {peak_label}")
    print()
    print(markdown_table(rows))

    analytic = analytic_forward_flops(config.model, size)
    print(
        f"\nFLOPs per image pair: train step {flops_per_image / 1e9:.3g} GFLOP counted "
        "(tf.compat.v1.profiler on the traced step, batch 1); "
        "analytic forward, convolutions only: "
        + ", ".join(f"{name} {value / 1e9:.3g}" for name, value in analytic.items())
        + f" GFLOP (sum {sum(analytic.values()) / 1e9:.3g})"
    )

    best = max(rows, key=lambda row: float(row["images/s"]))
    consumed = float(best["images/s"])
    batch = max(batch_sizes)
    wall, per_core = pipeline_rate(config, batch, 4 if args.smoke else 12)
    ratio = wall / consumed
    print(
        f"\ninput pipeline (Eq. 4 + synthetic pose, batch {batch}): {wall:.1f} images/s on "
        f"{os.cpu_count()} cores, {per_core:.1f} images per CPU-second; the fastest row "
        f"({best['strategy']}, {best['precision']}, batch {best['batch']}) consumes {consumed:.3g} "
        f"images/s: ratio {ratio:.2f}"
        + (
            " -- BELOW 1.0: the device waits for data"
            if ratio < 1.0
            else " (the pipeline keeps up)"
        )
    )
    print(f"host cores one such device needs for its input: {consumed / per_core:.2g} ({uptime()})")

    if device_kind == "CPU" and not args.no_torch:
        pair = torch_ratio(config, 1, steps)
        if pair is None:
            print("PyTorch twin: torch not installed")
        else:
            tf_rate, torch_rate = pair
            print(
                f"PyTorch twin (no VGG, batch 1): {torch_rate:.3g} steps/s vs TF fp32 without VGG "
                f"{tf_rate:.3g}: TF/PyTorch {tf_rate / torch_rate:.2f}x"
            )
    elif device_kind == "GPU":
        print("PyTorch twin: not timed (benchmarks/train_step.py's twin runs on CPU only)")
    print(f"end: {uptime()}")


def _device_names(device_kind):
    devices = tf.config.list_physical_devices(device_kind)
    names = []
    for device in devices:
        details = tf.config.experimental.get_device_details(device) if device_kind == "GPU" else {}
        names.append(details.get("device_name", device.name))
    return ", ".join(names) or "none"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument(
        "--batch_sizes",
        default=None,
        help="per-replica batch sizes, comma separated (default 1,8; smoke 1,2)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per row (default 10; smoke 2)"
    )
    parser.add_argument(
        "--precisions",
        default=None,
        help=f"comma separated, of {', '.join(PRECISIONS)} (default: all on GPU, "
        "fp32,bf16,xla on CPU, where float16 is emulated)",
    )
    parser.add_argument(
        "--peak_tflops",
        type=float,
        default=None,
        help="the device's peak TFLOP/s at the precision you read, for utilisation",
    )
    parser.add_argument("--no_torch", action="store_true", help="skip the PyTorch twin")
    parser.add_argument("--smoke", action="store_true", help="32 px, tiny widths, CPU, seconds")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except DeviceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
