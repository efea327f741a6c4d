r"""Quality evidence: guided GFRNet ("full") vs no guide ("-WG") at the smoke budget.

    python benchmarks/quality.py --workdir runs/quality [--steps 5000] \
        [--override=--config.model.flow_mode=absolute ...]

Writes the bundled sample shards (synthetic poses of one photo; "held-out" = unseen warps
and degradations of the same face), trains each variant with `gfrnet-train
--synthetic_pose` on the same data, budget and seed, and evaluates all of them on the
held-out split with `gfrnet-evaluate` in one table: PSNR/SSIM at 4x and 8x and the
landmark error of the guide before and after WarpNet's warp. Then a paired check at 4x:
per held-out image, PSNR(first variant) - PSNR(each other), with its mean, standard error
and how often the first variant wins. Same-run comparison only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags

from gfrnet_tf.apps.demo_stages import Stages, short_run_overrides
from gfrnet_tf.configs import load_config
from gfrnet_tf.data import make_dataset, to_uint8
from gfrnet_tf.evaluation import metrics
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.sample import write_sample_dataset

WORKDIR = flags.DEFINE_string("workdir", "runs/quality", "Folder for data, runs and the table.")
CONFIG = flags.DEFINE_string("config", "smoke", "Preset name or config file.")
STEPS = flags.DEFINE_integer("steps", 5000, "Joint-training steps per variant.")
VARIANTS = flags.DEFINE_list("variants", ["full", "no_guide"], "config.model.variant values to compare.")
OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra --config.* flags for every variant.")

NAMES = {"full": "full", "no_guide": "-WG", "no_warp": "-W", "no_flow_loss": "-F", "random_guide": "R"}
# Variants without a flow loss have nothing to pre-train; gfrnet-train refuses the phase.
NO_FLOW_LOSS = ("no_guide", "no_warp", "no_flow_loss")


def main(argv):
    del argv
    workdir = Path(WORKDIR.value)
    stages = Stages(total=2 + len(VARIANTS.value))
    started = stages.begin("sample shards")
    data = write_sample_dataset(workdir / "data", load_config(CONFIG.value).input.image_size)
    stages.end("sample shards", started)
    for variant in VARIANTS.value:
        stages.command(f"train {variant}", "train", [
            f"--config={CONFIG.value}", f"--workdir={workdir / variant}",
            f"--data={workdir / 'data'}",
            f"--config.model.variant={variant}", *short_run_overrides(STEPS.value), *OVERRIDES.value,
            *(["--config.train.warp_pretrain_epochs=0"] if variant in NO_FLOW_LOSS else [])])
    stages.command("evaluate on held-out", "evaluate", [
        *[f"--model={workdir / variant}" for variant in VARIANTS.value],
        f"--names={','.join(NAMES[v] for v in VARIANTS.value)}",
        f"--data={workdir / 'data'}", f"--output={workdir / 'eval'}"])
    psnr = paired_psnr_4x(workdir, data.files("test"))
    first = VARIANTS.value[0]
    for variant in VARIANTS.value[1:]:
        gain = psnr[first] - psnr[variant]
        print(f"4x PSNR {NAMES[first]} - {NAMES[variant]} over {gain.size} held-out images: "
              f"{gain.mean():+.2f} dB +- {gain.std(ddof=1) / np.sqrt(gain.size):.2f} (standard error), "
              f"{NAMES[first]} better on {np.mean(gain > 0):.0%}")


def paired_psnr_4x(workdir: Path, files: list[str]) -> dict[str, np.ndarray]:
    """Per-image 4x PSNR of each variant on the same seeded held-out inputs (gfrnet-evaluate's
    4x setting: its input config, seeded degradations with the scale fixed to 4)."""
    config = load_config(str(workdir / VARIANTS.value[0] / "config.json")).input
    config.degradation.mode = "seeded"
    config.degradation.scale = (4.0,)
    config.synthetic_pose.enabled = True
    restorers = {variant: load_restorer(workdir / variant) for variant in VARIANTS.value}
    values = {variant: [] for variant in VARIANTS.value}
    for inputs, targets in make_dataset(files, config, training=False):
        degraded, guide, target = (
            to_uint8(t).numpy() for t in (inputs["degraded"], inputs["guide"], targets["target"]))
        for variant, restorer in restorers.items():
            values[variant].append(metrics.psnr(target, restorer(degraded, guide).restored).numpy())
    return {variant: np.concatenate(parts) for variant, parts in values.items()}


if __name__ == "__main__":
    app.run(main)
