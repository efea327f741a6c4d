"""The iBUG-300W 68-point landmark scheme: the one place its indices are written down.

Every layer speaks of the same points (the training records, the flip, the landmark
and symmetry losses, the part discriminators, face quality, identity alignment, the
evaluation's inter-ocular distance), so the count, the named index ranges and the mirror
permutation live here, below everything, and import nothing.

Indices are 0-based (the 300W files number from 1). "Right" and "left" are the
subject's: the right eye (36-41) is the one on the image's left in a frontal photo.
"""

from __future__ import annotations

NUM_LANDMARKS = 68

JAW = slice(0, 17)
RIGHT_BROW, LEFT_BROW = slice(17, 22), slice(22, 27)
NOSE = slice(27, 36)  # bridge 27-30 and the nostril line 31-35
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
MOUTH = slice(48, 68)  # outer lip 48-59, inner lip 60-67
INNER_FACE = slice(17, 68)  # brows, nose, eyes and mouth: everything but the jaw line

JAW_RIGHT_END, CHIN, JAW_LEFT_END = 0, 8, 16
NOSE_TIP = 30
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45
MOUTH_RIGHT, MOUTH_LEFT = 48, 54


def _mirror_permutation() -> tuple[int, ...]:
    """0-based index of each point's mirror partner, from the 1-based 300W pairs."""
    pairs = [(j, 18 - j) for j in range(1, 9)]  # jaw 1-17, 9 (chin) is its own mirror
    pairs += [(18 + k, 27 - k) for k in range(5)]  # eyebrows
    pairs += [(32, 36), (33, 35)]  # nostrils; the bridge 28-31 and 34 stay
    pairs += [(37, 46), (38, 45), (39, 44), (40, 43), (41, 48), (42, 47)]  # eyes
    pairs += [(49, 55), (50, 54), (51, 53), (56, 60), (57, 59)]  # outer lip
    pairs += [(61, 65), (62, 64), (66, 68)]  # inner lip
    permutation = list(range(NUM_LANDMARKS))
    for a, b in pairs:
        permutation[a - 1], permutation[b - 1] = b - 1, a - 1
    return tuple(permutation)


# A mirrored face has its left eye where the right one was: after mirroring x, the point
# indices must be permuted too, or the right eye's corner would sit on the left eye.
MIRROR_PERMUTATION = _mirror_permutation()

# Points whose midpoint with their mirror partner lies on the face's symmetry axis: the
# chin and every inner-face point, each mirror pair once. The rest of the jaw is left
# out: under yaw its points follow the silhouette, not fixed places on the face, so their
# midpoints leave the axis. 10 midline points + 21 pair midpoints.
SYMMETRY_POINTS = tuple(
    i for i in range(NUM_LANDMARKS) if i == CHIN or INNER_FACE.start <= i <= MIRROR_PERMUTATION[i]
)
