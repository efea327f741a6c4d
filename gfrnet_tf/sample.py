"""The bundled sample face, and the small dataset the demo, benchmarks and tests make of it.

A 256x256 face crop of scikit-image's `astronaut` (Eileen Collins, NASA, public domain)
with its 68 landmarks. Regenerate with `python -m gfrnet_tf.pipelines.make_sample`.

With one photo there is only one face. Every record of the sample dataset is a different
synthetic pose and lighting of it (a `synthetic_pose` warp of the photo, stored as the
target, with the photo itself as its guide), so a model cannot just memorise one fixed
output image. The splits use disjoint seeds: "test" means warps and degradations never
seen in training -- of the same face, not of a new person.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from gfrnet_tf.data import default_input_config, encode_pair, write_shard
from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.data.parsing import resize_with_landmarks
from gfrnet_tf.data.pipeline import array_dataset
from gfrnet_tf.data.prepared import PreparedDataset, write_manifest
from gfrnet_tf.data.synthetic_pose import default_pose_settings, synthesize_guide
from gfrnet_tf.errors import BadRecordError
from gfrnet_tf.io.images import load_image

SAMPLE_DIR = Path(__file__).parent / "sample_data"
IMAGE_PATH = SAMPLE_DIR / "astronaut_face.png"
LANDMARKS_PATH = SAMPLE_DIR / "astronaut_face_landmarks.json"


def load_sample() -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 `[256, 256, 3]`, landmarks float32 `[68, 2]` pixel (x, y) of it)."""
    image = load_image(IMAGE_PATH)
    landmarks = np.asarray(json.loads(LANDMARKS_PATH.read_text())["landmarks"], np.float32)
    if landmarks.shape != (68, 2):
        raise BadRecordError(LANDMARKS_PATH, f"expected 68 (x, y) points, got {landmarks.shape}")
    return image, landmarks


@dataclasses.dataclass(frozen=True)
class Split:
    """`records` posed copies of the sample in `shards` files; `seed` keeps splits disjoint."""

    name: str
    records: int
    shards: int
    seed: int

    def shard_names(self) -> list[str]:
        return [
            f"{self.name}-{shard:05d}-of-{self.shards:05d}.tfrecord" for shard in range(self.shards)
        ]


SPLITS = (Split("train", 64, 2, 1), Split("val", 8, 1, 2), Split("test", 32, 1, 3))


# One trace for all records: op by op, a 256 px warp took ~0.9 s per record (measured).
@tf.function(autograph=False)
def posed_sample(image, landmarks, seed):
    """The sample photo in another pose and light (uint8) and its landmarks there.

    `synthesize_guide` maps the photo to a warped copy whose landmarks follow the warp
    exactly, which is what a target record needs.
    """
    posed, posed_landmarks, _ = synthesize_guide(
        tf.image.convert_image_dtype(image, tf.float32), landmarks, seed, default_pose_settings()
    )
    return tf.image.convert_image_dtype(posed, tf.uint8, saturate=True), posed_landmarks


def sample_at(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled photo (uint8) and its landmarks resized to `image_size` pixels."""
    image, landmarks = load_sample()
    image = tf.image.convert_image_dtype(image, tf.float32)
    image, landmarks = resize_with_landmarks(image, landmarks, image_size)
    return tf.image.convert_image_dtype(image, tf.uint8, saturate=True).numpy(), landmarks.numpy()


def write_sample_dataset(data_dir, image_size: int, splits=SPLITS) -> PreparedDataset:
    """Writes every split as TFRecord shards and a manifest (atomic, deterministic).

    Records are stored at the training size: the pipeline then skips its resize, and a
    64 px warp costs a sixteenth of a 256 px one. The manifest asks for synthetic-pose
    guides, as the records' guide is the unposed photo. Re-running overwrites everything
    with the same bytes.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    image, landmarks = sample_at(image_size)
    guide = tf.io.encode_png(image).numpy()  # one encoding shared by every record
    for split in splits:
        examples = []
        for index in range(split.records):
            target, target_landmarks = posed_sample(
                image, landmarks, tf.constant([split.seed, index])
            )
            examples.append(
                encode_pair(
                    target.numpy(),
                    guide,
                    target_landmarks.numpy(),
                    landmarks,
                    identity="astronaut",
                    target_file=f"{IMAGE_PATH.name}#{split.name}-{index}",
                    guide_file=IMAGE_PATH.name,
                )
            )
        names = split.shard_names()
        for name, part in zip(names, np.array_split(np.arange(split.records), split.shards)):
            write_shard(data_dir / name, [examples[i] for i in part])
    write_manifest(
        data_dir,
        {split.name: {"shards": split.shard_names(), "records": split.records} for split in splits},
        image_size,
        synthetic_pose=True,
    )
    return PreparedDataset(data_dir)


def degraded_pair(
    image_size: int, scale: float = 4.0, seed: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, guide) uint8 `[S, S, 3]` of the sample photo through the training pipeline:
    Eq. 4 at `scale` and a synthetic-pose guide, so restoring it is the task the model learnt."""
    config = default_input_config()
    config.image_size = image_size
    config.batch_size = 1
    config.seed = seed
    config.synthetic_pose.enabled = True
    config.degradation.mode = "fixed"
    config.degradation.fixed.scale = scale
    image, landmarks = sample_at(image_size)
    inputs, _ = next(
        iter(array_dataset(image[np.newaxis], landmarks[np.newaxis], config, training=False))
    )
    return to_uint8(inputs["degraded"][0]).numpy(), to_uint8(inputs["guide"][0]).numpy()
