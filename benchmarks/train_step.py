r"""Seconds per GFRNet train step (one G and one D update, no VGG): TensorFlow vs PyTorch.

    python -m benchmarks.train_step [--cases 64x8,256x1] [--steps 3]

Both sides run the same networks (pix2pix widths; at 64x64 the first 6, since depth 8
needs 256 px) with the same losses: l2, global and local adversarial (local = landmark
box cropped and resized), landmark (flow sampled at the target's landmarks) and TV, two
Adam optimizers. TensorFlow times `GFRNet.train_step` in a `tf.function`, with and without
`jit_compile` (XLA); PyTorch times its eager twin (`torch_reference.py`), whose weights are
copied from the Keras model. Both use `--threads` threads (default 2; on a loaded machine
use 1: PyTorch's OpenMP workers spin-wait and collapse when descheduled, TF's pool does
not, which would flatter TF). Each figure is the median of `--steps` calls, the frameworks
taking turns so that load changes hit all alike; ratios are against PyTorch in this run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
import torch
from torch.nn import functional as F

from benchmarks.torch_reference import twin_of
from gfrnet_tf.models.gfrnet import DEFAULT_LOSS_WEIGHTS, build_gfrnet
from gfrnet_tf.models.layers import PIX2PIX_WIDTHS


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


def build(size):
    depth = min(len(PIX2PIX_WIDTHS), int(np.log2(size)))
    model = build_gfrnet({"widths": PIX2PIX_WIDTHS[:depth], "local_size": size // 2})
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
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
        self.local_size, self.weights = size // 2, DEFAULT_LOSS_WEIGHTS
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="64x8,256x1", help="SIZExBATCH, comma separated")
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps of each framework per case"
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for each framework")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    for case in args.cases.split(","):
        size, batch = (int(v) for v in case.split("x"))
        model, data = build(size), make_batch(size, batch)
        steps = {
            "PyTorch": torch_step(model, data, size),
            "TF": tf_step(model, data, False),
            "TF+XLA": tf_step(model, data, True),
        }
        seconds = median_seconds(steps, args.steps)
        for name, value in seconds.items():
            print(
                f"{size}x{size} batch {batch}: {name:8} {value:7.3f} s/step  "
                f"{value / seconds['PyTorch']:5.2f}x PyTorch",
                flush=True,
            )


if __name__ == "__main__":
    main()
