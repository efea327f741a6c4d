"""tf.data input: TFRecord schema, landmark-aware flip, in-graph Eq. 4, synthetic-pose guides."""

from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.data.parsing import parse_pair
from gfrnet_tf.data.pipeline import (
    SkippedRecords,
    array_dataset,
    default_input_config,
    make_dataset,
)
from gfrnet_tf.data.prepared import PreparedDataset
from gfrnet_tf.data.records import encode_pair, write_shard
from gfrnet_tf.data.validation import validate_shard

__all__ = [
    "PreparedDataset",
    "SkippedRecords",
    "array_dataset",
    "default_input_config",
    "encode_pair",
    "make_dataset",
    "parse_pair",
    "to_model_range",
    "to_uint8",
    "validate_shard",
    "write_shard",
]
