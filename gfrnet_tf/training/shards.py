"""Start-up checks of the training and validation shards.

Kept out of `gfrnet_tf.apps.train` (which defines absl flags at import) so that library
code and tests can use them without registering the command's flags.
"""

from __future__ import annotations

from absl import logging

from gfrnet_tf.data import validate_shard
from gfrnet_tf.data.pipeline import list_shards
from gfrnet_tf.errors import BadConfigError


def check_shards(pattern: str, records_per_shard=None) -> tuple[list[str], int]:
    """The shards `pattern` matches and how many records were parsed (the first
    `records_per_shard` of each, or all; every record header is checked either way): a
    missing, unreadable, empty or hostile shard fails now with a `BadRecordError`, not an
    hour into training, and never reaches TF's record reader."""
    files = list_shards(pattern)
    checked = sum(validate_shard(path, limit=records_per_shard) for path in files)
    logging.info("%s: %d shard(s)", pattern, len(files))
    return files, checked


def validation_batches(
    files, batch_size: int, source: str, min_batch: int = 1
) -> tuple[list[str], int, int]:
    """Validation shards (every record checked), the batch size and the batches in one pass.

    `fit` then evaluates exactly one pass of the repeated, deterministic validation set each
    time, so successive `val_l2` values are comparable (and Keras never hits the end of an
    unsized dataset, which it reports as "ran out of data"). A split smaller than one
    training batch (a small collection's, from gfrnet-prepare) is validated as one smaller
    batch, a multiple of `min_batch` (the replicas); `source` (the dataset) is named if even
    that is impossible.
    """
    files, records = check_shards(files)
    size = min(batch_size, records // min_batch * min_batch)
    if size < 1:
        raise BadConfigError(
            source,
            f"its validation split holds {records} pair(s), fewer than the {min_batch} one "
            "validation batch needs here: prepare the data with a larger --val-fraction, or "
            "without a validation split",
        )
    return files, size, records // size
