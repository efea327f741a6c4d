"""Benchmark `gfrnet_tf.ops.resample` against `torch.nn.functional.grid_sample` on CPU.

Forward and forward+backward (gradients w.r.t. data and warp) at 256x256x3, batch 1 and
8, on the same smooth warp for both frameworks (pixel coordinates for TF, the equivalent
align-corners normalised grid for torch), 2 threads each. Variants are timed round-robin,
so machine load hits all of them alike; the table reports the best round (as `timeit`
does: on a shared machine the minimum is the least disturbed estimate) and the ratio to torch.

    python -m benchmarks.warp [--size 256] [--batches 1 8] [--rounds 25]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import torch

from gfrnet_tf.ops import resample

THREADS = 2


def smooth_warp(batch, size, rng):
    """Identity pixel grid plus a smooth displacement of a few pixels, partly off the image."""
    coarse = rng.normal(scale=4.0, size=(batch, 8, 8, 2)).astype(np.float32)
    displacement = tf.image.resize(coarse, (size, size), method="bicubic").numpy()
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.stack([xs, ys], axis=-1)[None] + displacement


def tf_variants(data, warp, upstream):
    """`{name: callable}` for TF graph mode and XLA, forward and forward+backward."""

    def forward_backward(data, warp):
        with tf.GradientTape() as tape:
            tape.watch([data, warp])
            loss = tf.reduce_sum(resample(data, warp) * upstream)
        return tape.gradient(loss, [data, warp])

    variants = {}
    for label, jit in (("tf graph", False), ("tf xla", True)):
        forward = tf.function(resample, jit_compile=jit)
        both = tf.function(forward_backward, jit_compile=jit)
        variants[("forward", label)] = lambda f=forward: f(data, warp).numpy()
        variants[("fwd+bwd", label)] = lambda f=both: [t.numpy() for t in f(data, warp)]
    return variants


def torch_variants(data, warp, upstream):
    """grid_sample with zero padding and align_corners=True: tfa's semantics, torch's layout."""
    size = data.shape[1]
    image = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    grid = torch.from_numpy(2.0 * warp / (size - 1) - 1.0).requires_grad_(True)
    grad_out = torch.from_numpy(upstream).permute(0, 3, 1, 2).contiguous()

    def sample():
        return torch.nn.functional.grid_sample(
            image, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )

    def forward():
        with torch.no_grad():
            return sample()

    def forward_backward():
        return torch.autograd.grad((sample() * grad_out).sum(), [image, grid])

    return {("forward", "torch"): forward, ("fwd+bwd", "torch"): forward_backward}, forward


def time_round_robin(variants, rounds):
    """Best seconds per variant, each round timing every variant once after two warm-ups."""
    for fn in variants.values():
        fn(), fn()
    times = {key: [] for key in variants}
    for _ in range(rounds):
        for key, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: min(values) for key, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)

    print(
        f"resample vs grid_sample, {args.size}x{args.size}x3, {THREADS} threads, "
        f"best of {args.rounds}"
    )
    print(f"{'batch':>5} {'pass':>8} {'torch ms':>9} {'tf graph ms':>12} {'ratio':>6}", end="")
    print(f" {'tf xla ms':>10} {'ratio':>6}")
    for batch in args.batches:
        data = rng.normal(size=(batch, args.size, args.size, 3)).astype(np.float32)
        warp = smooth_warp(batch, args.size, rng)
        upstream = rng.normal(size=data.shape[:3] + (3,)).astype(np.float32)
        torch_fns, torch_forward = torch_variants(data, warp, upstream)
        tf_fns = tf_variants(tf.constant(data), tf.constant(warp), tf.constant(upstream))
        reference = torch_forward().permute(0, 2, 3, 1).numpy()
        disagreement = np.abs(tf_fns[("forward", "tf graph")]() - reference).max()
        best = time_round_robin({**torch_fns, **tf_fns}, args.rounds)
        for mode in ("forward", "fwd+bwd"):
            base, graph, xla = (
                best[(mode, name)] * 1e3 for name in ("torch", "tf graph", "tf xla")
            )
            print(f"{batch:>5} {mode:>8} {base:>9.2f} {graph:>12.2f} {graph / base:>6.2f}", end="")
            print(f" {xla:>10.2f} {xla / base:>6.2f}")
        # torch derives pixel positions from the normalised grid, so they differ by rounding.
        print(f"      max |tf - torch| forward = {disagreement:.1e}")


if __name__ == "__main__":
    main()
