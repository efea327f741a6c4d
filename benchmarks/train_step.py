r"""Seconds per GFRNet train step (one G and one D update, no VGG): float32 vs bfloat16 vs PyTorch.

    python -m benchmarks.train_step [--cases 64x8,256x1,smoke] [--steps 3] [--threads 2]
        [--xla] [--profile DIR]

Both frameworks run the same networks (pix2pix widths; at 64x64 the first 6, since depth 8
needs 256 px; `smoke`: the smoke preset's model at its size and batch) with the same losses:
l2, global and local adversarial (local = landmark box cropped and resized), landmark (flow
sampled at the target's landmarks) and TV, two Adam optimizers. TensorFlow times
`GFRNet.train_step` in a `tf.function` under float32 and under `mixed_bfloat16` (built as
`gfrnet-train --precision mixed_bfloat16` builds it, run whether or not this CPU has bf16
instructions: the header says which), with `--xla` also compiled; PyTorch times its eager
twin (`torch_reference.py`), whose weights are copied from the Keras model. Both use
`--threads` threads (default 2; on a loaded machine use 1: PyTorch's OpenMP workers
spin-wait and collapse when descheduled, TF's pool does not, which would flatter TF).

Each figure is the median of `--steps` calls, the variants taking turns, so that load
changes hit all alike; TensorFlow's 2048^2 matmul in float32 and in bf16 takes its turn
too. The bf16 row shows its speed-up over the float32 row (`N.NNx`). Below each case: the
step's FLOPs (counted by `tf.compat.v1.profiler` in the traced float32 step) and the FLOP
floor at each matmul rate, i.e. how far each step is from what its dtype's GEMM could do.
`--profile DIR` traces one step of each TensorFlow variant (`tf.profiler`) into DIR and
prints its top ops by time.
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
import torch
from tensorflow.tsl.profiler.protobuf import xplane_pb2
from torch.nn import functional as F

from benchmarks.gpu import counted_step_flops
from benchmarks.input_pipeline import uptime
from benchmarks.torch_reference import twin_of
from gfrnet_tf import precision
from gfrnet_tf.configs import load_config
from gfrnet_tf.models.gfrnet import DEFAULT_LOSS_WEIGHTS, build_gfrnet
from gfrnet_tf.models.layers import PIX2PIX_WIDTHS

MATMUL_SIZE = 2048
# Row name: the Keras policy its TF model computes under.
DTYPES = {"fp32": precision.FLOAT32, "bf16": precision.BFLOAT16}


def make_batch(size, batch, seed=0):
    """Random images in [-1, 1] and landmarks inside the central 60% of the image."""
    rng = np.random.default_rng(seed)
    image = lambda: rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)  # noqa: E731
    points = lambda: rng.uniform(0.2 * size, 0.8 * size, (batch, 68, 2)).astype(np.float32)  # noqa: E731
    return {"degraded": image(), "guide": image()}, {
        "target": image(),
        "landmarks": points(),
        "guide_landmarks": points(),
    }


def case_model(case):
    """(label, `config.model`, size, batch) of a `--cases` item: `SIZExBATCH` (pix2pix
    widths, the project's model defaults) or `smoke` (the preset's model, size and batch)."""
    if case == "smoke":
        config = load_config("smoke")
        model = {**config.model.to_dict(), "vgg_face_weights": ""}
        size, batch = config.input.image_size, config.input.batch_size
        return f"{size}x{size} batch {batch} (smoke)", model, size, batch
    size, batch = (int(v) for v in case.split("x"))
    depth = min(len(PIX2PIX_WIDTHS), int(np.log2(size)))
    model = {"widths": PIX2PIX_WIDTHS[:depth], "local_size": size // 2}
    return f"{size}x{size} batch {batch}", model, size, batch


def build(model_config, size, policy=precision.FLOAT32):
    """The GFRNet of `model_config` with two Adams, its networks computing under `policy`
    (no loss scaling: float16 is not timed here)."""
    with precision.policy_scope(policy):
        model = build_gfrnet(model_config)
        model.compile(
            keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)
        )
        model.build_all((size, size))
    return model


def tf_step(model, data, jit_compile):
    """A traced (and, with XLA, compiled) `GFRNet.train_step` on a fixed batch."""
    train_step = tf.function(model.train_step, jit_compile=jit_compile)
    data = tf.nest.map_structure(tf.constant, data)
    return lambda: float(train_step(data)["g_total"])


class TorchTrainStep:
    """The same G and D updates as `GFRNet.train_step` in plain PyTorch (pix2pix style)."""

    def __init__(self, model, size):
        self.warpnet, self.recnet = twin_of(model.warpnet), twin_of(model.recnet)
        self.global_d, self.local_d = (
            twin_of(model.global_discriminator),
            twin_of(model.local_discriminator),
        )
        self.local_size, self.weights = model.local_size, DEFAULT_LOSS_WEIGHTS
        generator = [*self.warpnet.parameters(), *self.recnet.parameters()]
        self.discriminators = [*self.global_d.parameters(), *self.local_d.parameters()]
        self.g_optimizer = torch.optim.Adam(generator, lr=2e-4, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.discriminators, lr=2e-4, betas=(0.5, 0.999))

    def crop(self, images, landmarks):
        """Landmark box (10% margin) resized to local_size: `affine_grid` + `grid_sample`."""
        size = images.shape[-1]
        low, high = landmarks.min(1).values, landmarks.max(1).values
        pad = 0.1 * (high - low)
        low, high = ((low - pad).clamp(0, size - 1), (high + pad).clamp(0, size - 1))
        centre, half = (low + high) / (size - 1) - 1, (high - low) / (size - 1)
        theta = torch.zeros(images.shape[0], 2, 3)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = half[:, 0], half[:, 1], centre
        grid = F.affine_grid(
            theta,
            [images.shape[0], images.shape[1], self.local_size, self.local_size],
            align_corners=True,
        )
        return F.grid_sample(images, grid, align_corners=True)

    @staticmethod
    def bce(logits, label):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    def flow_terms(self, flow, landmarks, guide_landmarks, size):
        scale = 2.0 / (size - 1)
        at_landmarks = F.grid_sample(
            flow.permute(0, 3, 1, 2), (landmarks * scale - 1)[:, None], align_corners=True
        )
        landmark = (
            ((at_landmarks[:, :, 0].transpose(1, 2) - (guide_landmarks * scale - 1)) ** 2)
            .sum((1, 2))
            .mean()
        )
        grid = torch.stack(
            torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="xy"),
            -1,
        )
        displacement = flow - grid
        tv = ((displacement[:, 1:] - displacement[:, :-1]) ** 2).mean() + (
            (displacement[:, :, 1:] - displacement[:, :, :-1]) ** 2
        ).mean()
        return landmark, tv

    def __call__(self, degraded, guide, target, landmarks, guide_landmarks):
        size = degraded.shape[-1]
        for p in self.discriminators:
            p.requires_grad_(False)
        flow = self.warpnet(torch.cat([degraded, guide], 1))
        warped = F.grid_sample(guide, flow, align_corners=True)
        restored = self.recnet(torch.cat([degraded, warped], 1))
        condition = torch.cat([degraded, guide], 1)
        fake = torch.cat([condition, restored], 1)
        landmark, tv = self.flow_terms(flow, landmarks, guide_landmarks, size)
        w = self.weights
        g_total = (
            w["l2"] * F.mse_loss(restored, target)
            + w["adv_global"] * self.bce(self.global_d(fake), 0.9)
            + w["adv_local"] * self.bce(self.local_d(self.crop(fake, landmarks)), 0.9)
            + w["landmark"] * landmark
            + w["tv"] * tv
        )
        self.g_optimizer.zero_grad()
        g_total.backward()
        self.g_optimizer.step()
        for p in self.discriminators:
            p.requires_grad_(True)
        real, fake = torch.cat([condition, target], 1), torch.cat([condition, restored.detach()], 1)
        d_loss = (
            self.bce(self.global_d(real), 0.9)
            + self.bce(self.global_d(fake), 0.0)
            + self.bce(self.local_d(self.crop(real, landmarks)), 0.9)
            + self.bce(self.local_d(self.crop(fake, landmarks)), 0.0)
        )
        self.d_optimizer.zero_grad()
        d_loss.backward()
        self.d_optimizer.step()
        return float(g_total.detach())


def torch_step(model, data, size):
    """The PyTorch twin's train step on the same batch (NCHW), weights copied from `model`."""
    inputs, targets = data
    nchw = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    args = (
        nchw(inputs["degraded"]),
        nchw(inputs["guide"]),
        nchw(targets["target"]),
        torch.from_numpy(targets["landmarks"]),
        torch.from_numpy(targets["guide_landmarks"]),
    )
    step = TorchTrainStep(model, size)
    for network in (step.warpnet, step.recnet, step.global_d, step.local_d):
        network.train()
    return lambda: step(*args)


def median_seconds(steps, repeats):
    """Median seconds per call of each step function, calls interleaved round-robin so that
    a change in the machine's load hits every framework alike (one warm-up call each)."""
    times = {name: [] for name in steps}
    for round_index in range(repeats + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_index:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def matmul_step(dtype):
    """TensorFlow's `MATMUL_SIZE`^2 matmul in `dtype`, to time beside the steps."""
    matmul = tf.function(lambda a: tf.matmul(a, a))
    a = tf.cast(tf.random.stateless_normal((MATMUL_SIZE, MATMUL_SIZE), seed=(0, 0)), dtype)
    return lambda: matmul(a).numpy()


def top_ops(folder, count=12):
    """[(op type, seconds, share)] of the ops on TensorFlow's executor threads in the newest
    `tf.profiler` trace under `folder`, most time first (nested intra-op work included)."""
    path = max(Path(folder).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                op_type = plane.event_metadata[event.metadata_id].display_name
                if op_type:  # op events are "name:Type"; executor bookkeeping has none
                    totals[op_type] += event.duration_ps / 1e12
    total = sum(totals.values())
    return [(name, seconds, seconds / total) for name, seconds in totals.most_common(count)]


def profile(steps, folder):
    """Traces one call of each step into `folder/<name>` and prints its top ops."""
    for name, step in steps.items():
        target = Path(folder) / name.replace(" ", "_").replace("+", "_")
        tf.profiler.experimental.start(str(target))
        step()
        tf.profiler.experimental.stop()
        print(f"  profile {name} ({target}): top ops by time on the executor threads")
        for op_type, seconds, share in top_ops(target):
            print(f"    {op_type:32} {seconds * 1e3:8.1f} ms {share:6.1%}")


def report_case(label, seconds, flops):
    """The case's rows, the bf16 speed-up on the bf16 rows, and the FLOP floors."""
    for name, value in seconds.items():
        if name.startswith("matmul"):
            continue
        line = f"{label}: {name:12} {value:7.3f} s/step  {value / seconds['PyTorch']:5.2f}x PyTorch"
        if "bf16" in name:
            line += f"  bf16 speed-up {seconds[name.replace('bf16', 'fp32')] / value:.2f}x"
        print(line, flush=True)
    for dtype in ("fp32", "bf16"):
        rate = 2 * MATMUL_SIZE**3 / seconds[f"matmul {dtype}"]
        floor = flops / rate
        print(
            f"{label}: {flops / 1e9:.1f} GFLOP per step; TF {dtype} matmul {rate / 1e9:.0f} "
            f"GFLOP/s -> floor {floor:.3f} s; TF {dtype} step = "
            f"{seconds[f'TF {dtype}'] / floor:.2f}x its floor",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", default="64x8,256x1", help="SIZExBATCH or smoke, comma separated"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each variant per case")
    parser.add_argument("--threads", type=int, default=2, help="threads for each framework")
    parser.add_argument("--xla", action="store_true", help="also time TF steps under XLA")
    parser.add_argument("--profile", default=None, help="trace one step of each TF variant here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    native, how = precision.cpu_bf16_support()
    print(
        f"{args.threads} threads; CPU bf16: {'native' if native else 'emulated'} ({how}); "
        f"start {uptime()}",
        flush=True,
    )
    for case in args.cases.split(","):
        label, model_config, size, batch = case_model(case)
        data = make_batch(size, batch)
        models = {dtype: build(model_config, size, policy) for dtype, policy in DTYPES.items()}
        tf_steps = {f"TF {dtype}": tf_step(models[dtype], data, False) for dtype in DTYPES}
        if args.xla:
            tf_steps.update(
                {f"TF+XLA {dtype}": tf_step(models[dtype], data, True) for dtype in DTYPES}
            )
        steps = {
            "PyTorch": torch_step(models["fp32"], data, size),
            **tf_steps,
            "matmul fp32": matmul_step(tf.float32),
            "matmul bf16": matmul_step(tf.bfloat16),
        }
        seconds = median_seconds(steps, args.steps)
        flops = counted_step_flops(models["fp32"], data)
        report_case(label, seconds, flops)
        if args.profile:
            profile(tf_steps, Path(args.profile) / case)
    print(f"end {uptime()}", flush=True)


if __name__ == "__main__":
    main()
