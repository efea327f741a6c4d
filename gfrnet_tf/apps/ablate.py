r"""gfrnet-ablate: the §4.5 ablation study (Table 1's seven GFRNet rows) in one command.

    gfrnet-ablate --data DATASET_DIR --workdir runs/study --steps 5000 \
        [--variants Full,R,-F,-W,-W2,-WG,-WG2] [--config smoke] [--test_split test] \
        [--arcface_model arcface.onnx] [--test_protocol drawn|scale_only]

Trains every row on the same data, joint-step budget (after the demo's WarpNet
pre-training for the rows with a flow loss) and seed into `WORKDIR/train/<row>`, then
evaluates all of them on the same seeded test inputs and writes `table1.md` (the Table 1
layout beside the paper's numbers, and Full paired against each row), `table1.csv`,
`paired.csv`, `per_image.csv`, `study.json` and `figure.png` into WORKDIR, plus
gfrnet-evaluate's files in `WORKDIR/eval`. Re-running the command skips finished rows and
resumes an interrupted one (even after kill -9). The work is
`gfrnet_tf.ablation.run_study`; see docs/EVALUATION.md.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from gfrnet_tf.apps import common
from gfrnet_tf.configs.flags import define_config_flag
from gfrnet_tf.configs.variants import TABLE1_ROWS

CONFIG = define_config_flag(default="smoke")
DATA = flags.DEFINE_string(
    "data", None, "Dataset folder (with manifest.json): train, val and test splits."
)
WORKDIR = flags.DEFINE_string("workdir", None, "Folder for every row's run and the study's files.")
STEPS = flags.DEFINE_integer("steps", 5000, "Joint-training steps per row.")
VARIANTS = flags.DEFINE_list("variants", list(TABLE1_ROWS), "Table 1 rows to train and compare.")
TEST_SPLIT = flags.DEFINE_string("test_split", "test", "Split to evaluate on.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Test batch size.")
EXAMPLES = flags.DEFINE_integer("examples", 4, "Test faces per row in the figure.")
ARCFACE_MODEL = flags.DEFINE_string(
    "arcface_model",
    None,
    "An ArcFace .onnx or .tflite for the arcface_deg column (docs/EVALUATION.md).",
)
FACE_MEASURES = flags.DEFINE_bool(
    "face_measures", True, "Identity and landmark distances of the restored faces (needs dlib)."
)
TEST_PROTOCOL = common.define_test_protocol_flag()
flags.mark_flags_as_required(["data", "workdir"])


def main(argv):
    from gfrnet_tf import ablation
    from gfrnet_tf.data import PreparedDataset
    from gfrnet_tf.evaluation.identity import face_measures

    del argv
    dataset = PreparedDataset(DATA.value)
    measures, note = None, "face measures off (--noface_measures)"
    if FACE_MEASURES.value:
        measures, note = face_measures(ARCFACE_MODEL.value)
    if note:
        print(note)
    study = ablation.run_study(
        CONFIG.value,
        dataset,
        WORKDIR.value,
        STEPS.value,
        VARIANTS.value,
        test_split=TEST_SPLIT.value,
        face_measures=measures,
        face_note=note,
        test_protocol=TEST_PROTOCOL.value,
        batch_size=BATCH_SIZE.value,
        examples=EXAMPLES.value,
    )
    print((Path(WORKDIR.value) / "table1.md").read_text())
    print(
        f"study: {WORKDIR.value}/table1.md, figure.png, per_image.csv "
        f"({len(study.trained)} row(s) trained now)"
    )


run = common.make_run(main)

if __name__ == "__main__":
    run()
