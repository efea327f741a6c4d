"""The README's contact-sheet figure: a small library of real people restored by person.

    python -m benchmarks.library_figure [--steps 400] [--workdir DIR]

A small GFRNet (64 px, L2 loss only) is fitted for `--steps` steps to restore 3x-degraded
crops of the test portraits (tests/data/people; each face's guide is another photo of
the same person where there is one), then `restore_library` runs on a library of those
people (clean photos, 3x-degraded copies, a group photo), and Obama's contact sheet is
copied to docs/images/library_contact_sheet.png. The model has seen these faces: the
figure shows what the command writes, not how well an unseen face is restored. Its
results are pasted even where less sharp than the face was (`keep_sharper=False`): a 64 px
model cannot add detail to a 130 px face, so the command itself would keep every face.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gfrnet_tf.data.images import to_model_range
from gfrnet_tf.faces import DlibLandmarks, crop_face, detect_faces
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.restoration.library import (
    FaceAnalyser,
    RestoreSettings,
    default_options,
    restore_library,
)
from gfrnet_tf.restoration.outputs import OutputFolder
from gfrnet_tf.restoration.restorer import load_restorer
from tests.people_fixtures import degraded, portrait, side_by_side, write

SIZE = 64
GUIDE_OF = {"obama": "obama2", "obama2": "obama", "obama3": "obama", "biden": "biden"}
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "library_contact_sheet.png"


def crop(image):
    """The face's training crop and its 68 landmarks in it."""
    box = detect_faces(image)[0].box
    face, window = crop_face(image, box, size=SIZE)
    return face, window.to_crop(DlibLandmarks().locate(image, box))


def fitted_model(steps: int):
    degraded_crops, guides, targets, landmarks, guide_landmarks = [], [], [], [], []
    for name, guide_name in GUIDE_OF.items():
        large = side_by_side(portrait(name), height=400)
        target, points = crop(large)
        guide, guide_points = crop(side_by_side(portrait(guide_name), height=400))
        box = detect_faces(large)[0].box
        for scale in (2, 3, 4):
            for seed in range(4):
                degraded_crops.append(crop_face(degraded(large, scale, seed), box, size=SIZE)[0])
                targets.append(target)
                guides.append(guide)
                landmarks.append(points)
                guide_landmarks.append(guide_points)
    inputs = {
        "degraded": to_model_range(np.stack(degraded_crops)),
        "guide": to_model_range(np.stack(guides)),
    }
    targets = {
        "target": to_model_range(np.stack(targets)),
        "landmarks": np.stack(landmarks),
        "guide_landmarks": np.stack(guide_landmarks),
    }
    keras.utils.set_random_seed(0)
    model = build_gfrnet(
        {
            "widths": (16, 32, 64, 64, 64, 64),
            "discriminator_widths": (8, 16),
            "local_size": 16,
            "loss_weights": {"adv_global": 0.0, "adv_local": 0.0, "landmark": 0.0, "tv": 0.0},
        }
    )
    model.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.build_all((SIZE, SIZE))
    count = len(degraded_crops)
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).shuffle(count, seed=0)
    model.fit(data.repeat().batch(8), epochs=max(steps // 50, 1), steps_per_epoch=50, verbose=0)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="library-figure-"))
    model_path = work / "model.keras"
    if not model_path.exists():
        fitted_model(args.steps).save(model_path)
    root = work / "library"
    write(
        root,
        {
            "family/obama.jpg": portrait("obama"),
            "family/obama2.jpg": portrait("obama2"),
            "family/obama3_old.png": degraded(side_by_side(portrait("obama3"), height=400), 3),
            "family/biden.jpg": portrait("biden"),
            "family/biden_old.png": degraded(side_by_side(portrait("biden"), height=400), 3),
            "family/group_old.png": degraded(
                side_by_side(portrait("obama3"), portrait("biden"), height=400), 3, seed=2
            ),
        },
    )
    output = OutputFolder(work / "out", root)
    shutil.rmtree(output.path / "people", ignore_errors=True)
    summary = restore_library(
        root,
        output,
        load_restorer(model_path),
        FaceAnalyser(),
        RestoreSettings(SIZE, keep_sharper=False),
        default_options(),
        progress=False,
    )
    print(summary.describe())
    sheets = sorted((output.path / "people").glob("*.png"), key=lambda p: -p.stat().st_size)
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sheets[0], FIGURE)
    print(f"figure: {FIGURE} (from {sheets[0].name}); faces.csv in {output.path}")


if __name__ == "__main__":
    main()
