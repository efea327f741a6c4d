"""A small real-photo collection made from scikit-image's astronaut (public domain).

One fake identity of transformed copies of the same photo (only one upright and frontal),
a lone-photo identity, a folder of non-faces and a truncated JPEG, an empty folder, and
`junk/` holding the loader's whole corpus of awkward files (`image_fixtures`).
"""

import cv2
import numpy as np
from PIL import Image
from skimage import data

from image_fixtures import write_corpus

SIZE = 256  # small photos keep MTCNN fast; the face box is ~45 px


def _photo():
    return cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _rotated(image, degrees):
    matrix = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 4), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)


def make_collection(root):
    """Writes the collection under `root`; returns {identity: file names} (for `junk`,
    the corpus outcomes by name)."""
    photo = _photo()
    recoloured = np.clip(photo.astype(np.float32) * (1.15, 0.95, 0.8), 0, 255).astype(np.uint8)
    scaled = cv2.resize(cv2.resize(photo, (200, 200), interpolation=cv2.INTER_AREA),
                        (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    identities = {
        "astronaut": {"frontal.png": photo, "tilted_left.png": _rotated(photo, 25),
                      "tilted_right.jpg": _rotated(photo, -35),
                      "recoloured_tilted.png": _rotated(recoloured, 15),
                      "scaled_tilted.png": _rotated(scaled, -20)},
        "solo": {"only.jpg": np.ascontiguousarray(photo[:, ::-1])},
    }
    rng = np.random.default_rng(0)
    clouds = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), (0, 0), 4)
    identities["no_faces"] = {"clouds.png": clouds}
    listing = {}
    for identity, photos in identities.items():
        (root / identity).mkdir(parents=True)
        for name, image in photos.items():
            Image.fromarray(image).save(root / identity / name, quality=95)
        listing[identity] = sorted(photos)
    jpeg = (root / "astronaut" / "tilted_right.jpg").read_bytes()
    (root / "no_faces" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    listing["no_faces"].append("cut.jpg")
    (root / "empty").mkdir()
    listing["empty"] = []
    (root / "junk").mkdir()
    listing["junk"] = write_corpus(root / "junk")
    return listing
