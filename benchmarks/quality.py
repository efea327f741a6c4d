r"""Quality evidence: guided GFRNet ("full") vs no guide ("-WG") at the smoke budget.

    python benchmarks/quality.py --workdir runs/quality [--steps 1500] \
        [--override=--config.model.flow_mode=absolute ...]

Writes the bundled sample shards (synthetic poses of one photo; "held-out" = unseen warps
and degradations of the same face), trains each variant with `gfrnet-train
--synthetic_pose` on the same data, budget and seed, and evaluates all of them on the
held-out split with `gfrnet-evaluate` in one table: PSNR/SSIM at 4x and 8x and the
landmark error of the guide before and after WarpNet's warp. Same-run comparison only.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from gfrnet_tf.apps.common import load_config
from gfrnet_tf.apps.demo_stages import Stages, short_run_overrides, write_sample_shards

WORKDIR = flags.DEFINE_string("workdir", "runs/quality", "Folder for data, runs and the table.")
CONFIG = flags.DEFINE_string("config", str(Path(__file__).parents[1] / "configs" / "smoke.py"), "Config file.")
STEPS = flags.DEFINE_integer("steps", 1500, "Joint-training steps per variant.")
VARIANTS = flags.DEFINE_list("variants", ["full", "no_guide"], "config.model.variant values to compare.")
OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra --config.* flags for every variant.")

NAMES = {"full": "full", "no_guide": "-WG", "no_warp": "-W", "no_flow_loss": "-F", "random_guide": "R"}


def main(argv):
    del argv
    workdir = Path(WORKDIR.value)
    stages = Stages(total=2 + len(VARIANTS.value))
    started = stages.begin("sample shards")
    data = write_sample_shards(workdir / "data", load_config(CONFIG.value).input.image_size)
    stages.end("sample shards", started)
    for variant in VARIANTS.value:
        stages.command(f"train {variant}", "train", [
            f"--config={CONFIG.value}", f"--workdir={workdir / variant}",
            f"--data={data['train']}", f"--val_data={data['val']}", "--synthetic_pose",
            f"--config.model.variant={variant}", *short_run_overrides(STEPS.value), *OVERRIDES.value])
    stages.command("evaluate on held-out", "evaluate", [
        *[f"--model={workdir / variant}" for variant in VARIANTS.value],
        f"--names={','.join(NAMES[v] for v in VARIANTS.value)}",
        f"--data={data['heldout']}", f"--output={workdir / 'eval'}",
        f"--config={workdir / VARIANTS.value[0] / 'config.json'}", "--synthetic_pose"])


if __name__ == "__main__":
    app.run(main)
