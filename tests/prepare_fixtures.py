"""A small real-photo collection made from scikit-image's astronaut (public domain).

One fake identity of transformed copies of the same photo (only one upright and frontal),
a lone-photo identity, a folder of non-faces and a truncated JPEG, an empty folder, and
`junk/` holding the loader's whole corpus of awkward files (`image_fixtures`); `add_hostile`
adds the file-system hazards of a scraped collection.
"""

import hashlib
import os
import socket
import stat

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
    scaled = cv2.resize(
        cv2.resize(photo, (200, 200), interpolation=cv2.INTER_AREA),
        (SIZE, SIZE),
        interpolation=cv2.INTER_CUBIC,
    )
    identities = {
        "astronaut": {
            "frontal.png": photo,
            "tilted_left.png": _rotated(photo, 25),
            "tilted_right.jpg": _rotated(photo, -35),
            "recoloured_tilted.png": _rotated(recoloured, 15),
            "scaled_tilted.png": _rotated(scaled, -20),
        },
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


LONG_NAME = "l" * 240 + ".png"  # 244 bytes: within the file system's 255, long for anything else
MAX_PHOTO_BYTES = 2 * 2**20  # the run's --max-photo-bytes: every real photo here is smaller


def add_hostile(root):
    """What years of scraping leave in a collection, next to `make_collection`'s folders.

    Returns `(accepted, rejected)`: the photo keys that must be prepared (names that are
    not UTF-8 or very long, under their escaped text) and `{key: problem words}` for the
    files that must be rejected one row each (FIFO, socket, symlink loop, oversize,
    empty and undecodable files) without stopping or hanging the run.
    """
    photo = (root / "astronaut" / "frontal.png").read_bytes()
    tilted = (root / "astronaut" / "tilted_left.png").read_bytes()
    # An identity folder whose name is Latin-1, not UTF-8, holding a good pair.
    latin = os.path.join(os.fsencode(root), b"caf\xe9")
    os.mkdir(latin)
    for name, content in [(b"frontal.png", photo), (b"tilted.png", tilted)]:
        with open(os.path.join(latin, name), "wb") as stream:
            stream.write(content)
    hostile = root / "hostile"
    hostile.mkdir()
    with open(os.path.join(os.fsencode(hostile), b"\xff\xfe.png"), "wb") as stream:
        stream.write(photo)
    (hostile / LONG_NAME).write_bytes(tilted)
    os.mkfifo(hostile / "pipe.jpg")
    (hostile / "loop.jpg").symlink_to("loop.jpg")
    (hostile / "empty.png").write_bytes(b"")
    (hostile / "tab\tname.jpg").write_bytes(b"not an image")
    with open(hostile / "huge.jpg", "wb") as stream:
        stream.truncate(MAX_PHOTO_BYTES + 1)  # sparse: large, but costs no disk
    with socket.socket(socket.AF_UNIX) as server:
        cwd = os.getcwd()
        os.chdir(hostile)  # AF_UNIX paths are limited to ~108 bytes: bind a relative name
        try:
            server.bind("socket.jpg")
        finally:
            os.chdir(cwd)
    accepted = {
        "caf\\xe9/frontal.png",
        "caf\\xe9/tilted.png",
        "hostile/\\xff\\xfe.png",
        f"hostile/{LONG_NAME}",
    }
    rejected = {
        "hostile/pipe.jpg": "not a regular file",
        "hostile/socket.jpg": "not a regular file",
        "hostile/loop.jpg": "cannot open",
        "hostile/empty.png": "empty file",
        "hostile/huge.jpg": f"more than {MAX_PHOTO_BYTES} bytes",
        "hostile/tab name.jpg": "not an image file",
    }
    return accepted, rejected


def tree_state(root):
    """`{relative path bytes: (mode, size, mtime_ns, content digest)}` of everything under
    `root`, without following links or opening FIFOs: to assert nothing there changed."""
    state = {}
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            digest = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as stream:
                    digest = hashlib.sha256(stream.read()).hexdigest()
            state[os.path.relpath(path, os.fsencode(root))] = (
                info.st_mode,
                info.st_size,
                info.st_mtime_ns,
                digest,
            )
    return state
