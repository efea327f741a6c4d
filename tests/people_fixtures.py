"""Photos of real people for the restore-by-person tests (tests/data/people/PROVENANCE.md).

Obama (3 photos) and Biden (1), White House portraits, and the bundled astronaut; the
degraded copies use the evaluation's Eq. 4 at a fixed scale, seeded.
"""

from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from gfrnet_tf.data.degrade import degrade, fixed_degradation
from gfrnet_tf.io import load_image, save_image
from gfrnet_tf.sample import load_sample

PEOPLE = Path(__file__).resolve().parent / "data" / "people"


def portrait(name: str) -> np.ndarray:
    """`obama`, `obama2`, `obama3`, `biden` (about 200 px, the face ~66 px wide) or
    `astronaut` (the 256 px sample, a 138 px face)."""
    return load_sample()[0] if name == "astronaut" else load_image(PEOPLE / f"{name}.jpg")


def degraded(image: np.ndarray, scale: float = 4.0, seed: int = 0) -> np.ndarray:
    """Eq. 4 with blur 1.5, the given scale, noise 3 and JPEG 40."""
    setting = fixed_degradation({"blur": 1.5, "scale": scale, "noise": 3.0, "jpeg_quality": 40})
    result = degrade(tf.constant(image, tf.float32) / 255.0, setting, tf.constant([seed, 1]))
    return np.round(result.numpy() * 255.0).astype(np.uint8)


def side_by_side(*images: np.ndarray, height: int = 200) -> np.ndarray:
    """A group photo: the portraits at one height, left to right."""
    resized = [
        cv2.resize(
            i, (round(i.shape[1] * height / i.shape[0]), height), interpolation=cv2.INTER_AREA
        )
        for i in images
    ]
    return np.concatenate(resized, axis=1)


def write(folder: Path, photos: dict) -> None:
    """Saves `{relative name: image}` under `folder`."""
    for name, image in photos.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(path, image)
