"""Shard validation at start-up, and TF's error text about a bad record as `BadRecordError`.

`validate_shard` checks every header (`framing`) and runs the parser (`parsing`) over a
shard, raising `BadRecordError` for any failure, including images that do not decode (the
train command calls it so a bad shard fails before the first step). A bad record met later,
while a dataset is iterated, surfaces as a TF op error: `record_errors` and
`readable_problem` read the shard, record and problem back out of its text.
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf

from gfrnet_tf.data.framing import check_record_headers
from gfrnet_tf.data.parsing import parse_pair
from gfrnet_tf.errors import BadRecordError, first_line
from gfrnet_tf.io.paths import printable

# How a record's problem shows in TF's error text.
_ASSERT_MARKER = "assertion failed: ["
_NOT_EXAMPLE = "payload is not a tf.train.Example"
_PARSE_FAILURE = "Could not parse example input"  # TF's text, followed by the raw payload


def validate_shard(path, limit=None) -> int:
    """Checks every record header (`check_record_headers`), then parses the first `limit`
    (default: all) records with `parse_pair`; returns the number of records parsed.

    Raises `BadRecordError` naming the shard and record for a hostile or truncated header,
    a schema violation, an image that is too large or does not decode, or a corrupt
    payload. Records are parsed in order, so the index of the first failure is the number
    that parsed before it.
    """
    path = os.fspath(path)
    check_record_headers(path)
    records = tf.data.TFRecordDataset(path)
    if limit is not None:
        records = records.take(limit)
    # The whole sample is the output: tf.data prunes ops whose results are unused, and an
    # image that is never returned would never be decoded.
    parsed = records.map(
        lambda serialized: parse_pair(serialized, shard=path),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    count = 0
    try:
        for _ in parsed:
            count += 1
    except tf.errors.DataLossError as error:
        raise BadRecordError(
            f"{printable(path)}: record {count}", "corrupt record (payload CRC mismatch)"
        ) from error
    except tf.errors.OpError as error:
        raise BadRecordError(
            f"{printable(path)}: record {count}", readable_problem(error.message)
        ) from error
    except UnicodeDecodeError as error:
        # TF quotes an unparseable payload's raw bytes in its message, which then fails to
        # decode on the way to Python.
        raise BadRecordError(f"{printable(path)}: record {count}", _NOT_EXAMPLE) from error
    return count


def _record_assertion(message: str):
    """`(shard, index, problem)` from the text of a `parse_pair` assertion in a TF error
    message, or None if the error is not one of ours."""
    if _ASSERT_MARKER not in message:
        return None
    text = message.split(_ASSERT_MARKER, 1)[1].split("]", 1)[0]
    shard, _, rest = text.rpartition(": record ")
    index, _, problem = rest.partition(": ")
    return shard, index, problem


@contextlib.contextmanager
def record_errors(source):
    """Turns a bad record met while iterating a dataset of `parse_pair` records (training
    steps, a batch drawn with `next`) into `BadRecordError("<shard>: record <i>", problem)`.

    `source` (e.g. the shard pattern) is named when TF's error does not say the shard: a
    payload that is not a `tf.train.Example` (TF quotes its raw bytes, which then fail to
    decode on the way to Python). Other errors pass through unchanged.
    """
    try:
        yield
    except tf.errors.OpError as error:
        found = _record_assertion(error.message or "")
        if found is not None:
            shard, index, problem = found
            raise BadRecordError(f"{shard}: record {index}", problem) from None
        if _PARSE_FAILURE not in (error.message or ""):
            raise
        raise BadRecordError(printable(source), f"a record's {_NOT_EXAMPLE}") from None
    except UnicodeDecodeError:
        raise BadRecordError(printable(source), f"a record's {_NOT_EXAMPLE}") from None


def readable_problem(message: str) -> str:
    """The problem in a TF op error from `parse_pair`: our assertion's text if there is one
    (without its `<shard>: record <i>: ` prefix), else the cleaned first line."""
    found = _record_assertion(message)
    if found:
        return found[2]
    return _NOT_EXAMPLE if _PARSE_FAILURE in message else first_line(message)
