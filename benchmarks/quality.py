r"""Quality evidence on the bundled face: the ablation study (`gfrnet-ablate`) on its sample data.

    python -m benchmarks.quality --workdir runs/quality [--steps 5000] \
        [--variants Full,R,-F,-W,-W2,-WG,-WG2] [--config smoke] \
        [--config.model.flow_mode=absolute ...]

Writes the bundled sample dataset (synthetic poses of one photo; "test" = unseen warps and
degradations of the same face, not a new person) at the config's image size into
`WORKDIR/data`, then runs `gfrnet_tf.ablation.run_study` on it: every row
trained on the same data, budget and seed, all evaluated on the same seeded test inputs,
with Table 1's layout, Full paired against each row per image, and the figure (see
docs/EVALUATION.md). Same-run comparison only. Default rows: Full and -WG.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from gfrnet_tf import ablation
from gfrnet_tf.apps.common import make_run
from gfrnet_tf.configs.flags import define_config_flag
from gfrnet_tf.evaluation.identity import face_measures
from gfrnet_tf.sample import write_sample_dataset

CONFIG = define_config_flag(default="smoke")
WORKDIR = flags.DEFINE_string(
    "workdir", "runs/quality", "Folder for data, runs and the study's files."
)
STEPS = flags.DEFINE_integer("steps", 5000, "Joint-training steps per row.")
VARIANTS = flags.DEFINE_list("variants", ["Full", "-WG"], "Table 1 rows to compare.")


def main(argv):
    del argv
    workdir = Path(WORKDIR.value)
    dataset = write_sample_dataset(workdir / "data", CONFIG.value.input.image_size)
    measures, note = face_measures()
    ablation.run_study(
        CONFIG.value,
        dataset,
        workdir,
        STEPS.value,
        VARIANTS.value,
        face_measures=measures,
        face_note=note,
    )
    print((workdir / "table1.md").read_text())


if __name__ == "__main__":
    make_run(main)()  # loads the default preset, then parses the command line
