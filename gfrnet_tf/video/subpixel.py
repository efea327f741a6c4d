"""Face crops at sub-pixel positions, pasted back through the same transform.

A tracked face glides; a crop window rounded to whole pixels (`faces.crop_face`, right
for photos and training crops) jumps instead, so the network sees the face shift inside
its crop by up to half a pixel from frame to frame, and its output flickers. Measured on
the moving test clip with a trained 64 px model (docs/VIDEO.md): rounding the smoothed
track's window more than doubles the flicker. Video crops are therefore cut by an affine
warp at the exact smoothed position (the square of `faces.crop` around the box: same
margin, black beyond the frame), anti-aliased when shrinking, and pasted back through the
inverse warp with the photos' feathered mask (`restoration.paste.feather_mask`). Pixels
outside the window are never touched.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from gfrnet_tf.restoration.paste import feather_mask

PASTE_FEATHER = 0.1  # as `paste_face`


@dataclasses.dataclass(frozen=True)
class Window:
    """A square `side` px wide with its top-left corner at (x0, y0) (floats), seen at `size` px."""

    x0: float
    y0: float
    side: float
    size: int

    def frame_to_crop(self) -> np.ndarray:
        """2x3 affine matrix from frame pixels to crop pixels (pixel centres as cv2.resize)."""
        step = self.side / self.size
        return np.array(
            [
                [1 / step, 0, (0.5 - self.x0) / step - 0.5],
                [0, 1 / step, (0.5 - self.y0) / step - 0.5],
            ]
        )

    def bounds(self, width: int, height: int, pad: int = 0) -> tuple[int, int, int, int]:
        """Whole-pixel (x0, y0, x1, y1) covering the window plus `pad`, inside the frame."""
        return (
            max(math.floor(self.x0) - pad, 0),
            max(math.floor(self.y0) - pad, 0),
            min(math.ceil(self.x0 + self.side) + pad, width),
            min(math.ceil(self.y0 + self.side) + pad, height),
        )


def window_around(box, margin: float, size: int) -> Window:
    """The square of (1 + 2 * margin) box sides centred on `box` = (x, y, width, height)."""
    x, y, width, height = box
    side = max(width, height) * (1 + 2 * margin)
    return Window(x + width / 2 - side / 2, y + height / 2 - side / 2, side, size)


def crop(image: np.ndarray, window: Window) -> np.ndarray:
    """uint8 `[size, size, 3]` of `image` in `window`, black where it leaves the image."""
    x0, y0, x1, y1 = window.bounds(image.shape[1], image.shape[0], pad=2)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((window.size, window.size, 3), np.uint8)
    region = image[y0:y1, x0:x1]
    shrink = window.side / window.size
    if shrink > 1:  # what INTER_AREA would average, as a Gaussian of the same variance
        region = cv2.GaussianBlur(region, (0, 0), math.sqrt((shrink**2 - 1) / 12))
    return cv2.warpAffine(
        region,
        _shifted(window.frame_to_crop(), x0, y0),
        (window.size, window.size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def paste(
    image: np.ndarray, face: np.ndarray, window: Window, feather: float = PASTE_FEATHER
) -> np.ndarray:
    """A copy of `image` with the crop `face` blended back into `window` (feathered edge)."""
    x0, y0, x1, y1 = window.bounds(image.shape[1], image.shape[0], pad=1)
    if x1 <= x0 or y1 <= y0:
        return image
    matrix = _shifted(window.frame_to_crop(), x0, y0)
    size = (x1 - x0, y1 - y0)
    back = cv2.warpAffine(
        face,
        matrix,
        size,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    mask = cv2.warpAffine(
        feather_mask(window.size, window.size, feather),
        matrix,
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )[..., None]
    region = image[y0:y1, x0:x1].astype(np.float32)
    result = image.copy()
    result[y0:y1, x0:x1] = np.clip(np.round(region + mask * (back - region)), 0, 255)
    return result


def _shifted(frame_to_crop: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The same transform for a region of the frame starting at (x0, y0)."""
    matrix = frame_to_crop.copy()
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)
    return matrix
