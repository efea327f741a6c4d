"""Per identity: choose the guide, pick ground-truth photos, split, shard.

Pure functions of the prepared faces, so results do not depend on the order in which a
distributed runner delivers them: every choice sorts on content, ties end on the key.
"""

from __future__ import annotations

import dataclasses
import hashlib

from gfrnet_tf.pipelines.photo import PreparedFace

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class PairOptions:
    """§4.1: at most five photos per identity, one frontal eyes-open guide, the rest targets."""

    max_per_identity: int = 5
    # Below ~0.2 the eyes are closed (Soukupova & Cech 2016); the paper wants them open.
    min_eye_aspect_ratio: float = 0.2
    synthetic_pose: bool = False
    val_fraction: float = 0.05
    test_fraction: float = 0.05


def frontal_cost(face: PreparedFace) -> float:
    """Degrees away from an upright, camera-facing head: |yaw| + |roll|."""
    return abs(face.yaw) + abs(face.roll)


def choose_guide(faces: list[PreparedFace], min_eye_aspect_ratio: float):
    """The most frontal face with open eyes (sharper wins a tie), or None if no eyes are open."""
    open_eyes = [f for f in faces if f.eye_aspect_ratio >= min_eye_aspect_ratio]
    if not open_eyes:
        return None
    return min(open_eyes, key=lambda f: (round(frontal_cost(f), 3), -f.sharpness, f.key))


def _by_sharpness(face: PreparedFace):
    return (-face.sharpness, face.key)


def keep_candidates(faces: list[PreparedFace], options: PairOptions) -> list[PreparedFace]:
    """The few faces `make_pairs` can still pick: the best guide and the sharpest ones.

    `make_pairs(keep_candidates(x)) == make_pairs(x)`, and keeping candidates of merged
    partial results is the same as of the whole, so Beam can reduce an identity's photos
    before the shuffle (a VGGFace2 identity has ~360 photos, of which 5 are used).
    """
    guide = choose_guide(faces, options.min_eye_aspect_ratio)
    sharpest = sorted(faces, key=_by_sharpness)[: options.max_per_identity]
    kept = {face.key: face for face in sharpest + ([guide] if guide else [])}
    return [kept[key] for key in sorted(kept)]


def make_pairs(faces: list[PreparedFace], options: PairOptions):
    """`(pairs, skip_reason)`: `[(target, guide)]`, or `[]` and the reason for the counter.

    A lone photo becomes a pair with itself as guide under `synthetic_pose` (the input
    pipeline then makes the guide by a random warp in-graph), else it is skipped.
    """
    if len(faces) == 1:
        if options.synthetic_pose:
            return [(faces[0], faces[0])], None
        return [], "single_photo_identity"
    guide = choose_guide(faces, options.min_eye_aspect_ratio)
    if guide is None:
        return [], "no_open_eyes_guide"
    others = sorted((f for f in faces if f.key != guide.key), key=_by_sharpness)
    return [(target, guide) for target in others[: options.max_per_identity - 1]], None


def _unit_hash(text: str, salt: str) -> float:
    """A stable number in [0, 1) for `text` (Python's `hash` changes between processes)."""
    digest = hashlib.sha256(f"{salt}:{text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(identity: str, val_fraction: float, test_fraction: float) -> str:
    """train/val/test from the identity alone, so no identity can land in two splits."""
    value = _unit_hash(identity, "split")
    if value < test_fraction:
        return "test"
    if value < test_fraction + val_fraction:
        return "val"
    return "train"


def shard_of(identity: str, num_shards: int) -> int:
    """The shard that holds all of an identity's pairs (independent of the split hash)."""
    return int(_unit_hash(identity, "shard") * num_shards)
