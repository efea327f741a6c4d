"""Ours(R)'s pairs (§4.5): each target with the guide of a record of another person.

The paper's R variant is GFRNet trained "by using a random I^g with different identity to
I^d". Records carry their person (`identity`) and that person's guide, so the input
pipeline re-pairs them in stream order: each record takes the guide (and its landmarks)
of the most recent earlier record whose identity differs from its own. In a shuffled
training stream that is a random other person; in an evaluation's fixed order, a fixed
one. It works at any batch size, batch 1 included, and no record is dropped:

- `Dataset.scan` keeps two guides of two different people; one of them is never the
  record's person. It takes that one, and the state becomes (the record's own guide, the
  one taken), which again holds two people.
- The state starts from the first two people of the split, read once, in order, when the
  dataset is made (`first_two_people`). A split of one person, or a record without an
  identity, is refused there or, met later, fails the step naming the record.
"""

from __future__ import annotations

import os

import tensorflow as tf

from gfrnet_tf.data.parsing import check_in_record, decode_pair
from gfrnet_tf.data.records import FEATURES
from gfrnet_tf.data.validation import readable_problem
from gfrnet_tf.errors import BadConfigError, BadRecordError
from gfrnet_tf.io.paths import printable

GUIDE_KEYS = ("guide", "guide_landmarks", "identity")
# Keys the re-paired sample needs from `decode_pair` (the target's own guide included: it
# becomes a later record's guide).
SAMPLE_KEYS = ("target", "landmarks", *GUIDE_KEYS)
_IDENTITY_ONLY = {"identity": FEATURES["identity"]}


def identity_code(identity):
    """A person's name as an int64 for `targets` (strings cannot enter an XLA step)."""
    return tf.strings.to_hash_bucket_fast(identity, 2**62)


def first_two_people(files) -> tuple[dict, dict]:
    """`GUIDE_KEYS` of the first record of `files` (read in order) and of the first record
    of another person after it.

    Raises `BadConfigError` when the records hold fewer than two people and
    `BadRecordError` for a record without an identity or one that does not decode.
    """
    found = []
    for path in files:
        records = tf.data.TFRecordDataset(path)
        try:
            for index, serialized in enumerate(records):
                person = tf.io.parse_single_example(serialized, _IDENTITY_ONLY)["identity"]
                if not person.numpy():
                    raise BadRecordError(
                        f"{printable(path)}: record {index}",
                        "no identity: Ours(R) needs each record's person",
                    )
                if not found or person.numpy() != found[0]["identity"].numpy():
                    found.append(decode_pair(serialized, path, index, GUIDE_KEYS))
                if len(found) == 2:
                    return found[0], found[1]
        except tf.errors.OpError as error:
            raise BadRecordError(printable(path), readable_problem(error.message)) from None
    people = f"only {found[0]['identity'].numpy().decode(errors='replace')!r}" if found else "none"
    raise BadConfigError(
        printable(os.path.dirname(files[0]) or files[0]) if files else "dataset",
        f"Ours(R) trains with the guide of another person, but the records hold {people}: "
        "it needs a dataset of at least two people",
    )


def with_other_identity_guides(records, first, second):
    """`(shard, index, sample)` records -> the same with `sample`'s guide, guide landmarks
    and `guide_identity` taken from an earlier record of another person (module doc).

    `sample` holds `SAMPLE_KEYS` (`decode_pair`'s uint8 images at the stored size);
    `first`, `second` are `first_two_people`.
    """

    def pair(state, record):
        shard, index, sample = record
        last, other = state
        person = sample["identity"]
        named = check_in_record(
            tf.strings.length(person) > 0,
            shard,
            index,
            "no identity: Ours(R) needs each record's person",
        )
        with tf.control_dependencies([named]):
            use_last = tf.not_equal(person, last["identity"])
        # `other` is never `last`'s person, so one of the two is not the record's.
        taken = {
            key: tf.cond(use_last, lambda k=key: last[k], lambda k=key: other[k])
            for key in GUIDE_KEYS
        }
        own = {key: sample[key] for key in GUIDE_KEYS}
        paired = dict(sample, guide=taken["guide"], guide_landmarks=taken["guide_landmarks"])
        paired["guide_identity"] = taken["identity"]
        return (own, taken), (shard, index, paired)

    return records.scan((second, first), pair)
