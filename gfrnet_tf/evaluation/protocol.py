"""The Table 1 protocol: run models over a test set and measure them per setting.

Settings (all seeded, so every model sees exactly the same degraded images):
- "4x" and "8x": Eq. 4 with the scale fixed to 4 or 8 (the paper's two test settings);
- "blind": every parameter drawn from the paper's sets (the training distribution).
What the 4x/8x settings do with the other parameters is the `test_protocol`
(`test_protocols.TEST_PROTOCOLS`: "drawn" by default, or "scale_only").
All models are run on each batch in one pass over the data, so their inputs are the
same by construction. Model inputs are the degraded image and the guide rounded to
uint8, as a user's files are. The guide's alignment (landmark error with and without
the predicted warp) and, in synthetic-pose mode, the flow end-point error are measured
on the blind setting; they depend on WarpNet only, not on the restoration. With
`face_measures` (`evaluation.identity`), identity and landmark distances of the restored
face are measured at the 4x and 8x settings.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Iterable, Mapping

import numpy as np
from tqdm import tqdm

from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.errors import BadConfigError, BadModelFileError
from gfrnet_tf.evaluation import metrics
from gfrnet_tf.evaluation.test_protocols import DEFAULT_TEST_PROTOCOL, TEST_PROTOCOLS
from gfrnet_tf.restoration.restorer import Restoration

SETTINGS = {
    "4x": "Eq. 4 with scale 4 (other parameters: see test_protocol)",
    "8x": "Eq. 4 with scale 8 (other parameters: see test_protocol)",
    "blind": "seeded Eq. 4, every parameter from the sets (paper's by default)",
}
FIXED_SCALES = {"4x": 4.0, "8x": 8.0}
ALIGNMENT_SETTING = "blind"
GROUND_TRUTH = "ground truth"  # the targets' key in `Evaluation.setting_examples`
ALIGNMENT_COLUMNS = ("landmark_error_guide", "landmark_error_warped", "flow_epe_px")


# Face measures run on Table 1's settings only: dlib's ResNet (built without BLAS in the
# dlib-bin wheels) takes ~0.5 s per face on one core, 2 s on this loaded shared machine.
FACE_SETTINGS = ("4x", "8x")


def columns(face_columns=()) -> tuple[str, ...]:
    """Table columns: PSNR/SSIM per setting (and face measures at `FACE_SETTINGS`), then
    the alignment."""
    per_setting = [
        f"{m}_{s}"
        for s in SETTINGS
        for m in ("psnr", "ssim", *(face_columns if s in FACE_SETTINGS else ()))
    ]
    return ("model", *per_setting, *ALIGNMENT_COLUMNS)


COLUMNS = columns()


def setting_config(input_config, setting: str, test_protocol: str = DEFAULT_TEST_PROTOCOL):
    """`config.input` for one setting: seeded, and for 4x/8x the scale fixed (`TEST_PROTOCOLS`)."""
    if test_protocol not in TEST_PROTOCOLS:
        raise BadConfigError(
            "test_protocol", f"one of {tuple(TEST_PROTOCOLS)}, got {test_protocol!r}"
        )
    config = copy.deepcopy(input_config)
    config.degradation.mode = "seeded"
    if setting in FIXED_SCALES and test_protocol == "drawn":
        config.degradation.scale = (FIXED_SCALES[setting],)
    elif setting in FIXED_SCALES:
        config.degradation.mode = "fixed"
        config.degradation.fixed = {
            "blur": 0.0,
            "scale": FIXED_SCALES[setting],
            "noise": 0.0,
            "jpeg_quality": 0,
        }
    return config


class DegradedInput:
    """A stand-in "model" that returns its input: the baseline row of the table."""

    image_size = None

    def __call__(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        return Restoration(restored=degraded, warped_guide=guide, flow=None)


@dataclasses.dataclass
class Evaluation:
    """Table rows, per-image values, example rows (I_d | I_g | I_w | restored | I) and
    failures, per model; `columns` are the rows' keys in table order."""

    rows: list[dict]
    examples: dict[str, list]
    failures: dict[str, str]  # model name -> problem
    per_image: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    columns: tuple[str, ...] = COLUMNS
    setting_examples: dict[str, dict[str, list]] = dataclasses.field(default_factory=dict)


def evaluate(
    restorers: Mapping[str, Callable],
    make_batches: Callable[[str], Iterable],
    example_limit: int = 4,
    face_measures=None,
) -> Evaluation:
    """One table row per model that ran through; `make_batches(setting)` gives the test batches.

    A model that fails on the data (e.g. an export for another image size) is dropped
    from the run, its problem in `failures`. Measures a model cannot provide (no flow
    output, no true flow) are NaN ("n/a" in the table). `per_image[model][measure]` keeps
    every image's value in data order (the same images for every model), for paired
    comparisons; `setting_examples[setting][model]` the first restored faces per setting
    (and `[GROUND_TRUTH]` their targets).
    """
    active = dict(restorers)
    values = {name: {} for name in restorers}
    examples = {name: [] for name in restorers}
    setting_examples = {
        setting: {name: [] for name in [*restorers, GROUND_TRUTH]} for setting in SETTINGS
    }
    failures = {}
    for setting in SETTINGS:
        for inputs, targets in tqdm(make_batches(setting), desc=setting, unit="batch", leave=False):
            degraded, guide, target = (
                to_uint8(t).numpy()
                for t in (inputs["degraded"], inputs["guide"], targets["target"])
            )
            truth = setting_examples[setting][GROUND_TRUTH]
            truth.extend(target[: max(0, example_limit - len(truth))])
            reference = None
            if face_measures is not None and setting in FACE_SETTINGS:
                reference = face_measures.reference(target, targets["landmarks"].numpy())
            for name, restorer in list(active.items()):
                try:
                    result = restorer(degraded, guide)
                except BadModelFileError as error:
                    failures[name] = error.problem
                    del active[name]
                    continue
                measures = _measures(setting, result, target, targets)
                if reference is not None:
                    measures.update(
                        {
                            f"{measure}_{setting}": batch
                            for measure, batch in face_measures.measure(
                                result.restored, reference
                            ).items()
                        }
                    )
                for measure, batch in measures.items():
                    values[name].setdefault(measure, []).append(np.asarray(batch, np.float64))
                kept = setting_examples[setting][name]
                kept.extend(result.restored[: max(0, example_limit - len(kept))])
                if setting == ALIGNMENT_SETTING:
                    rows = zip(degraded, guide, result.warped_guide, result.restored, target)
                    examples[name].extend(list(row) for row in rows)
                    del examples[name][example_limit:]
    table_columns = columns(face_measures.columns if face_measures is not None else ())
    per_image = {
        name: {m: np.concatenate(parts) for m, parts in values[name].items()} for name in active
    }
    rows = [_row(name, per_image[name], table_columns) for name in active]
    return Evaluation(
        rows,
        {name: examples[name] for name in active},
        failures,
        per_image,
        table_columns,
        {
            s: {name: kept[name] for name in [*active, GROUND_TRUTH]}
            for s, kept in setting_examples.items()
        },
    )


def _row(name: str, values: Mapping[str, np.ndarray], table_columns) -> dict:
    row = dict.fromkeys(table_columns, float("nan"))
    row.update({measure: float(value.mean()) for measure, value in values.items()})
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
