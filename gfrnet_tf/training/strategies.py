"""The `tf.distribute` strategies a run can ask for, by name; `distribute.make_strategy` builds
them. Free of TensorFlow, so a command's `--help` lists them without loading it."""

STRATEGIES = ("auto", "mirrored", "multiworker", "none")
