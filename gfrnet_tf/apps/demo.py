r"""gfrnet-demo: the whole system on the bundled sample face, in one command (CPU, minutes).

    gfrnet-demo --workdir runs/demo [--steps 5000] [--config smoke] \
        [--config.model.widths='(8, 16, 32, 32, 32)' --config.input.image_size=32 ...]

Stages, each the real command (run as its own process, see `demo_stages.Stages`):
1. sample data: synthetic poses of the one bundled photo as a dataset folder WORKDIR/data
   -- `train`, `val` (validation loss each data epoch) and `test` splits. With one photo,
   test means warps and degradations unseen in training, of the same face;
2. `gfrnet-train` of the config (500 steps of WarpNet pre-training, then
   about `--steps` joint steps, constant learning rate: `demo_stages.SHORT_RUN_OVERRIDES`
   says why) into WORKDIR/train;
3. `gfrnet-evaluate` on the test split: Table-1 style PSNR/SSIM at 4x and 8x and the
   landmark error of the guide before and after the warp, into WORKDIR/eval;
4. `gfrnet-export`: SavedModel (WORKDIR/export/<version>/) and TFLite fp32
   (WORKDIR/export/gfrnet-v<version>-fp32.tflite);
5. `gfrnet-restore --aligned` with the SavedModel on a 4x-degraded copy of the photo and a
   synthetic guide (WORKDIR/sample), into WORKDIR/restored.
It ends with the table and where every artefact is. `--config.*` overrides go to
`gfrnet-train` as given, after the demo's own (write them with `=`). Re-running into the
same WORKDIR rewrites the data (same bytes), resumes the training -- a finished run is
not trained again -- and writes a fresh evaluation, a new SavedModel version and new
restored images.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from gfrnet_tf.apps.common import make_run
from gfrnet_tf.apps.demo_stages import Stages, short_run_overrides
from gfrnet_tf.configs.budget import EPOCH_STEPS, PRETRAIN_EPOCHS
from gfrnet_tf.configs.flags import define_config_flag
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.runs import RunFolder

WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Folder for everything the demo writes.")
STEPS = flags.DEFINE_integer(
    "steps",
    5000,
    f"Joint-training steps (rounded up to whole {EPOCH_STEPS}-step data epochs), after "
    f"{PRETRAIN_EPOCHS * EPOCH_STEPS} WarpNet pre-training steps; the whole demo takes about "
    "6 minutes on 2 idle CPU cores with the default.",
)
CONFIG = define_config_flag("smoke")


def config_overrides(argv) -> list[str]:
    """The `--config.x.y=value` flags of the command line, verbatim, for `gfrnet-train`.

    Passing the original text (absl has already checked it against the config) avoids
    re-serialising typed values such as tuples and strings.
    """
    return [arg for arg in argv if arg.startswith("--config.")]


def main(argv):
    del argv
    from gfrnet_tf.io import save_image
    from gfrnet_tf.sample import degraded_pair, write_sample_dataset

    if STEPS.value < 1:
        raise BadConfigError("--steps", f"must be >= 1, got {STEPS.value}")
    config_path = config_flags.get_config_filename(flags.FLAGS["config"])
    image_size = CONFIG.value.input.image_size
    workdir = Path(WORKDIR.value)
    paths = {
        name: workdir / name for name in ("data", "sample", "train", "eval", "export", "restored")
    }
    verbosity = flags.FLAGS["verbosity"]
    stages = Stages(total=5, common_args=[f"--verbosity={verbosity.value}"] * verbosity.present)

    started = stages.begin(f"sample data: {image_size} px synthetic poses of the bundled photo")
    data = write_sample_dataset(paths["data"], image_size)
    paths["sample"].mkdir(parents=True, exist_ok=True)
    degraded, guide = degraded_pair(image_size)
    save_image(paths["sample"] / "degraded_4x.png", degraded)
    save_image(paths["sample"] / "guide.png", guide)
    counts = ", ".join(f"{split} {data.records(split)}" for split in data.splits)
    print(
        f"dataset {paths['data']} ({counts} pairs); "
        "test = unseen warps/degradations of the same face"
    )
    stages.end("sample data", started)

    stages.command(
        "train",
        "train",
        [
            f"--config={config_path}",
            *short_run_overrides(STEPS.value),
            *config_overrides(sys.argv),
            f"--workdir={paths['train']}",
            f"--data={paths['data']}",
        ],
    )
    stages.command(
        "evaluate on the test split",
        "evaluate",
        [
            f"--model={paths['train']}",
            "--names=gfrnet",
            f"--data={paths['data']}",
            f"--output={paths['eval']}",
        ],
    )
    stages.command(
        "export SavedModel + TFLite fp32",
        "export",
        [
            f"--model={paths['train']}",
            f"--output={paths['export']}",
            "--formats=savedmodel,tflite_fp32",
        ],
    )
    stages.command(
        "restore the degraded sample",
        "restore",
        [
            f"--model={paths['export']}",
            f"--input={paths['sample'] / 'degraded_4x.png'}",
            f"--guide={paths['sample'] / 'guide.png'}",
            f"--output={paths['restored']}",
            "--aligned",
        ],
    )
    print_summary(paths, stages)


def print_summary(paths, stages) -> None:
    from gfrnet_tf.evaluation import protocol, report

    results = json.loads((paths["eval"] / "results.json").read_text())
    print(
        "\n== done in {:.0f} s ({})".format(
            time.monotonic() - stages.start,
            ", ".join(f"{k} {v:.0f} s" for k, v in stages.timings.items()),
        )
    )
    # results.json stores a missing measure as null; the table shows NaN as "n/a".
    rows = [
        {k: float("nan") if v is None else v for k, v in row.items()} for row in results["rows"]
    ]
    print(report.markdown_table(rows, protocol.COLUMNS))
    run = RunFolder(paths["train"])
    print(f"""
PSNR/SSIM on RGB uint8 of {results["image_size"]} px test faces; landmark errors are
normalised by the inter-ocular distance (guide = before WarpNet, warped = after).
table       {paths["eval"] / "results.csv"} (and results.json, examples_gfrnet.png)
checkpoint  {run.checkpoints}   TensorBoard: {run.tensorboard}
exports     {paths["export"]} (SavedModel <version>/, gfrnet-v<version>-fp32.tflite)
restored    {paths["restored"] / "degraded_4x_restored.png"}
compare     {paths["restored"] / "degraded_4x_face0_compare.png"}
            (labelled: degraded | guide | warped guide | restored)
inputs      {paths["sample"] / "degraded_4x.png"}, {paths["sample"] / "guide.png"}""")


run = make_run(main)

if __name__ == "__main__":
    run()
