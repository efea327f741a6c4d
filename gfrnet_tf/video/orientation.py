"""A clip's display matrix: how its stored frames are turned for showing, as EXIF for photos.

Phones store portrait video sideways and tag the stream with a display matrix (FFmpeg's
`AV_PKT_DATA_DISPLAYMATRIX`: nine int32, the 2x2 part `a b / c d` maps a stored point
`(p, q)` to the shown `(a p + c q, b p + d q)`, y pointing down). Players apply it; so does
`VideoReader`, so faces are upright for the detector, as `load_image` applies EXIF
orientation. The writer turns the restored frames back and writes the same matrix, so the
output is stored, tagged and shown as the source is. Quarter turns and mirrors (the eight
EXIF orientations) are supported; any other matrix is refused by name.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

_INT32 = struct.Struct("<9i")


@dataclasses.dataclass(frozen=True)
class Orientation:
    """Shown = stored, transposed if `transpose`, then mirrored left-right if `flip_x` and
    upside down if `flip_y`. `matrix`: the source's nine values (None: untagged)."""

    transpose: bool = False
    flip_x: bool = False
    flip_y: bool = False
    matrix: tuple[int, ...] | None = None

    @classmethod
    def from_side_data(cls, data: bytes | None) -> "Orientation":
        """From a frame's DISPLAYMATRIX side data; `ValueError` for a turn that is not a
        multiple of 90 degrees (or a matrix that scales)."""
        if not data or len(data) < _INT32.size:  # none, or not a matrix: shown as stored
            return cls()
        matrix = _INT32.unpack(bytes(data)[: _INT32.size])
        a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
        if b == c == 0 and a and d:
            orientation = cls(False, a < 0, d < 0, matrix)
        elif a == d == 0 and b and c:
            orientation = cls(True, c < 0, b < 0, matrix)
        else:
            raise ValueError(f"its display matrix {list(matrix)} is not a quarter turn or a mirror")
        return orientation if orientation.turns else cls()

    @property
    def turns(self) -> bool:
        return self.transpose or self.flip_x or self.flip_y

    def upright(self, image: np.ndarray) -> np.ndarray:
        """A stored frame `[H, W, ...]` as it is shown."""
        if self.transpose:
            image = image.swapaxes(0, 1)
        if self.flip_x:
            image = image[:, ::-1]
        if self.flip_y:
            image = image[::-1]
        return np.ascontiguousarray(image) if self.turns else image

    def stored(self, image: np.ndarray) -> np.ndarray:
        """The inverse of `upright`: a shown frame back as it is stored."""
        if self.flip_y:
            image = image[::-1]
        if self.flip_x:
            image = image[:, ::-1]
        if self.transpose:
            image = image.swapaxes(0, 1)
        return np.ascontiguousarray(image) if self.turns else image
