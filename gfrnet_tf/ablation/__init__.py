"""The §4.5 ablation study: train Table 1's rows alike, test them alike, compare.

It sits above both `gfrnet_tf.training` and `gfrnet_tf.evaluation` (as tf-models'
`train_lib` above its trainer and evaluator), which never import each other.
"""

from gfrnet_tf.ablation.study import Study, row_config, run_study

__all__ = ["Study", "row_config", "run_study"]
