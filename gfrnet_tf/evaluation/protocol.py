"""The Table 1 protocol: run models over a test set and average the measures per setting.

Settings (all seeded, so every model sees exactly the same degraded images):
- "4x" and "8x": Eq. 4 with the scale fixed to 4 or 8 (the paper's two test settings)
  and blur, noise and JPEG quality drawn from the paper's sets;
- "blind": every parameter drawn from the paper's sets (the training distribution).
All models are run on each batch in one pass over the data, so their inputs are the
same by construction. Model inputs are the degraded image and the guide rounded to
uint8, as a user's files are. The guide's alignment (landmark error with and without
the predicted warp) and, in synthetic-pose mode, the flow end-point error are measured
on the blind setting; they depend on WarpNet only, not on the restoration.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Iterable, Mapping

import numpy as np
from tqdm import tqdm

from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.errors import BadModelFileError
from gfrnet_tf.evaluation import metrics
from gfrnet_tf.restoration.restorer import Restoration

SETTINGS = {
    "4x": "seeded Eq. 4 with scale 4, other parameters from the sets",
    "8x": "seeded Eq. 4 with scale 8, other parameters from the sets",
    "blind": "seeded Eq. 4, every parameter from the sets (paper's by default)",
}
FIXED_SCALES = {"4x": 4.0, "8x": 8.0}
ALIGNMENT_SETTING = "blind"
COLUMNS = (
    "model",
    "psnr_4x", "ssim_4x",
    "psnr_8x", "ssim_8x",
    "psnr_blind", "ssim_blind",
    "landmark_error_guide", "landmark_error_warped", "flow_epe_px",
)


def setting_config(input_config, setting: str):
    """`config.input` for one setting: seeded, and for 4x/8x the scale set cut to that scale."""
    config = copy.deepcopy(input_config)
    config.degradation.mode = "seeded"
    if setting in FIXED_SCALES:
        config.degradation.scale = (FIXED_SCALES[setting],)
    return config


class DegradedInput:
    """A stand-in "model" that returns its input: the baseline row of the table."""

    image_size = None

    def __call__(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        return Restoration(restored=degraded, warped_guide=guide, flow=None)


@dataclasses.dataclass
class Evaluation:
    """Table rows, example rows (I_d | I_g | I_w | restored | I) and failures, per model."""

    rows: list[dict]
    examples: dict[str, list]
    failures: dict[str, str]  # model name -> problem


def evaluate(restorers: Mapping[str, Callable], make_batches: Callable[[str], Iterable],
             example_limit: int = 4) -> Evaluation:
    """One table row per model that ran through; `make_batches(setting)` gives the test batches.

    A model that fails on the data (e.g. an export for another image size) is dropped
    from the run, its problem in `failures`. Measures a model cannot provide (no flow
    output, no true flow) are NaN ("n/a" in the table).
    """
    active = dict(restorers)
    values = {name: {} for name in restorers}
    examples = {name: [] for name in restorers}
    failures = {}
    for setting in SETTINGS:
        for inputs, targets in tqdm(make_batches(setting), desc=setting, unit="batch", leave=False):
            degraded, guide, target = (
                to_uint8(t).numpy() for t in (inputs["degraded"], inputs["guide"], targets["target"])
            )
            for name, restorer in list(active.items()):
                try:
                    result = restorer(degraded, guide)
                except BadModelFileError as error:
                    failures[name] = error.problem
                    del active[name]
                    continue
                for measure, batch in _measures(setting, result, target, targets).items():
                    values[name].setdefault(measure, []).append(np.asarray(batch, np.float64))
                if setting == ALIGNMENT_SETTING:
                    rows = zip(degraded, guide, result.warped_guide, result.restored, target)
                    examples[name].extend(list(row) for row in rows)
                    del examples[name][example_limit:]
    rows = [_row(name, values[name]) for name in active]
    return Evaluation(rows, {name: examples[name] for name in active}, failures)


def _row(name: str, values: Mapping[str, list]) -> dict:
    row = dict.fromkeys(COLUMNS, float("nan"))
    row.update({measure: float(np.concatenate(parts).mean()) for measure, parts in values.items()})
    row["model"] = name
    return row


def _measures(setting, result: Restoration, target, targets) -> dict[str, np.ndarray]:
    measures = {
        f"psnr_{setting}": metrics.psnr(target, result.restored).numpy(),
        f"ssim_{setting}": metrics.ssim(target, result.restored).numpy(),
    }
    if setting != ALIGNMENT_SETTING:
        return measures
    measures["landmark_error_guide"] = metrics.unwarped_guide_landmark_error(
        targets["landmarks"], targets["guide_landmarks"]
    ).numpy()
    if result.flow is not None:
        measures["landmark_error_warped"] = metrics.warped_guide_landmark_error(
            result.flow, targets["landmarks"], targets["guide_landmarks"]
        ).numpy()
        if "flow" in targets:
            measures["flow_epe_px"] = metrics.flow_end_point_error(
                result.flow, targets["flow"]
            ).numpy()
    return measures
