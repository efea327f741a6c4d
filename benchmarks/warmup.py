r"""The demo's budget with and without a reconstruction warm-up before the adversarial terms.

    python -m benchmarks.warmup --workdir runs/warmup [--steps 5000] \
        [--warmup_steps 0,2000,5000] [--config smoke] [--config.model.x=...]

Every candidate trains the config on the bundled sample data with the demo's schedule
(`configs.budget.short_run_schedule`: WarpNet pre-training, then `--steps` joint steps at a
constant rate), the first W of those joint steps on the reconstruction terms alone
(`config.train.reconstruction_warmup_epochs`; W = `--steps` never switches the adversarial
terms on). All are measured on the same seeded test pairs (`evaluation.protocol`): PSNR and
dlib's identity distance of the restored face and, next to it, of the warped guide it was
made from, at 4x and 8x; and on the demo's own 4x sample (`sample.degraded_pair`). Writes
`warmup.md`, `warmup.json` and `warmup.png` (labelled: per candidate the demo sample's
warped guide and restored face) into WORKDIR. A finished candidate is not trained again.
Same-run comparison only: each candidate's training time is printed with its CPU time.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from absl import flags

from gfrnet_tf.apps.common import make_run
from gfrnet_tf.configs.budget import EPOCH_STEPS, short_run_schedule
from gfrnet_tf.configs.flags import define_config_flag
from gfrnet_tf.data import make_dataset
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.evaluation import metrics, protocol, report, runner
from gfrnet_tf.evaluation.identity import face_measures
from gfrnet_tf.io import save_image
from gfrnet_tf.restoration.restorer import Restoration, load_restorer
from gfrnet_tf.runs import RunFolder
from gfrnet_tf.sample import degraded_pair, sample_at, write_sample_dataset
from gfrnet_tf.training import fit
from gfrnet_tf.visualize import labelled_grid

CONFIG = define_config_flag(default="smoke")
WORKDIR = flags.DEFINE_string("workdir", "runs/warmup", "Folder for data, runs and results.")
STEPS = flags.DEFINE_integer("steps", 5000, "Joint steps per candidate (the demo's budget).")
WARMUPS = flags.DEFINE_list(
    "warmup_steps", ["0", "2000", "5000"], "Candidates: joint steps without adversarial terms."
)
COLUMNS = ("psnr_4x", "identity_distance_4x", "psnr_8x", "identity_distance_8x")


class WarpedGuide:
    """A restorer whose output is its model's warped guide: how far WarpNet alone gets."""

    def __init__(self, restorer):
        self.restorer = restorer
        self.image_size, self.config = restorer.image_size, restorer.config

    def __call__(self, degraded, guide) -> Restoration:
        result = self.restorer(degraded, guide)
        return Restoration(result.warped_guide, result.warped_guide, result.flow)


def candidate_config(base, steps: int, warmup: int):
    """`base` with the demo's short-run schedule and `warmup` joint steps of warm-up."""
    if warmup % EPOCH_STEPS or not 0 <= warmup <= steps:
        raise BadConfigError("--warmup_steps", f"whole {EPOCH_STEPS}-step epochs up to --steps")
    config = base.copy_and_resolve_references()
    with config.unlocked():
        config.train.update(short_run_schedule(steps))
        config.train.reconstruction_warmup_epochs = warmup // EPOCH_STEPS
    return config


def train(config, workdir: Path, dataset) -> dict:
    """Trains one candidate unless its last checkpoint exists; wall and CPU seconds."""
    last = (config.train.warp_pretrain_epochs + config.train.epochs) * config.train.steps_per_epoch
    if str(RunFolder(workdir).latest_checkpoint()).endswith(f"{last:08d}.weights.h5"):
        return {}
    wall, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    fit.train(config, workdir, dataset)
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {"train_wall_s": time.monotonic() - wall, "train_cpu_s": used}


def evaluate(restorers: dict, dataset, measures):
    """The protocol's rows for every restorer, on the test split."""
    config = runner.evaluation_input_config(restorers, None, None, 8)
    config = dataset.input_config(config, "test")

    def make_batches(setting):
        return make_dataset(
            dataset.files("test"), protocol.setting_config(config, setting), training=False
        )

    return protocol.evaluate(restorers, make_batches, 4, measures)


def sample_results(restorers: dict, size: int, measures) -> tuple[dict, dict]:
    """On the demo's 4x sample: `{name: {psnr, identity_distance}}` and `{name: image}`."""
    degraded, guide = degraded_pair(size)
    target, landmarks = sample_at(size)
    reference = measures.reference(target[None], landmarks[None]) if measures else None
    values, images = {}, {"degraded 4x": degraded, "ground truth": target}
    for name, restorer in restorers.items():
        image = restorer(degraded[None], guide[None]).restored
        images[name] = image[0]
        values[name] = {"psnr": float(metrics.psnr(target[None], image).numpy()[0])}
        if measures:
            distance = measures.measure(image, reference)["identity_distance"][0]
            values[name]["identity_distance"] = float(distance)
    return values, images


def main(argv):
    del argv
    workdir = Path(WORKDIR.value)
    size = CONFIG.value.input.image_size
    dataset = write_sample_dataset(workdir / "data", size)
    measures, note = face_measures()
    restorers, timings = {}, {}
    for warmup in (int(w) for w in WARMUPS.value):
        name = f"warm-up {warmup}"
        run = workdir / f"warmup_{warmup}"
        timings[name] = train(candidate_config(CONFIG.value, STEPS.value, warmup), run, dataset)
        print(f"{name}: {timings[name] or 'trained before'}", flush=True)
        restorer = load_restorer(run)
        restorers[f"{name}: restored"] = restorer
        restorers[f"{name}: warped guide"] = WarpedGuide(restorer)
    evaluation = evaluate(restorers, dataset, measures)
    sample, images = sample_results(restorers, size, measures)
    rows = [
        {**{c: row.get(c, float("nan")) for c in ("model", *COLUMNS)}, **_sampled(sample, row)}
        for row in evaluation.rows
    ]
    columns = ("model", *COLUMNS, "psnr_sample", "identity_distance_sample")
    table = report.markdown_table(rows, columns)
    report.write_text(workdir / "warmup.md", table + (f"\n{note}\n" if note else ""))
    report.write_json(workdir / "warmup.json", {"rows": rows, "timings": timings, "note": note})
    order = ["degraded 4x", *restorers, "ground truth"]
    labels = [name.replace("warm-up ", "w").replace(": ", " ") for name in order]
    save_image(workdir / "warmup.png", labelled_grid(labels, [[images[n] for n in order]], 128))
    print(table)
    print(f"results: {workdir / 'warmup.md'}, warmup.json, warmup.png")


def _sampled(sample: dict, row: dict) -> dict:
    values = sample.get(row["model"], {})
    return {
        "psnr_sample": values.get("psnr", float("nan")),
        "identity_distance_sample": values.get("identity_distance", float("nan")),
    }


if __name__ == "__main__":
    make_run(main)()
