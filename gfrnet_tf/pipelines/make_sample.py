"""Regenerates the bundled sample face from scikit-image's public-domain `astronaut`.

    python -m gfrnet_tf.pipelines.make_sample

Runs the same per-photo code as `gfrnet-prepare` (MTCNN box + margin, 256 crop, dlib
68 landmarks), so the sample looks exactly like a prepared training face. Needs the
`dev` and `landmarks` extras; the library itself only reads the committed files.
"""

from __future__ import annotations

import json

from gfrnet_tf.faces import DlibLandmarks
from gfrnet_tf.io import atomic_writer
from gfrnet_tf.pipelines.photo import prepare_image
from gfrnet_tf.sample import IMAGE_PATH, LANDMARKS_PATH


def make_sample() -> None:
    from skimage import data

    (face,) = prepare_image(data.astronaut(), "astronaut", "astronaut", DlibLandmarks())
    with atomic_writer(IMAGE_PATH) as stream:
        stream.write(face.png)
    record = {
        "source": "skimage.data.astronaut() (NASA, public domain)",
        "coordinates": "pixel (x, y) of the 256x256 crop, iBUG-300W 68-point order",
        "landmarks": face.landmarks.round(2).tolist(),
    }
    with atomic_writer(LANDMARKS_PATH) as stream:
        stream.write(json.dumps(record, indent=1).encode())
    print(
        f"wrote {IMAGE_PATH} and {LANDMARKS_PATH}: confidence {face.confidence:.3f}, "
        f"yaw {face.yaw:.1f} deg, roll {face.roll:.1f} deg, sharpness {face.sharpness:.0f}"
    )


if __name__ == "__main__":
    make_sample()
