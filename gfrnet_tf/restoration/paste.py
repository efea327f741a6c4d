"""Putting a restored face crop back into the whole photo.

The crop came from a box in the photo (possibly reaching past its border, as the
training crops do). The restored face is resized to the box and blended with a mask
that is 1 inside and falls linearly to 0 towards the box edges, so no seam shows where
the restored and the original pixels meet. Pixels outside the box are never touched,
and the photo keeps its size and colour.
"""

from __future__ import annotations

import cv2
import numpy as np


def feather_mask(height: int, width: int, feather: float) -> np.ndarray:
    """Blend weights `[height, width]`: 1 inside, a linear ramp over `feather` of the size."""

    def ramp(length: int) -> np.ndarray:
        centres = np.arange(length) + 0.5
        to_edge = np.minimum(centres, length - centres)
        return np.clip(to_edge / max(feather * length, 1.0), 0.0, 1.0)

    return np.minimum(ramp(height)[:, None], ramp(width)[None, :]).astype(np.float32)


def paste_face(
    photo: np.ndarray, face: np.ndarray, box: tuple[int, int, int, int], feather: float = 0.1
) -> np.ndarray:
    """Returns a copy of `photo` with `face` (uint8 RGB) blended into `box` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty paste box {box}")
    width, height = x1 - x0, y1 - y0
    if face.shape[:2] != (height, width):
        shrinking = width < face.shape[1]
        face = cv2.resize(
            face, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        )
    mask = feather_mask(height, width, feather)[..., None]
    # Only the part of the box inside the photo is pasted.
    px0, py0 = max(x0, 0), max(y0, 0)
    px1, py1 = min(x1, photo.shape[1]), min(y1, photo.shape[0])
    if px1 <= px0 or py1 <= py0:
        raise ValueError(
            f"paste box {box} lies outside the {photo.shape[1]}x{photo.shape[0]} photo"
        )
    inside = (slice(py0 - y0, py1 - y0), slice(px0 - x0, px1 - x0))
    region = photo[py0:py1, px0:px1].astype(np.float32)
    blended = region + mask[inside] * (face[inside].astype(np.float32) - region)
    result = photo.copy()
    result[py0:py1, px0:px1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return result
