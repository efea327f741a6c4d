"""`--config NAME|FILE` for absl programs: a preset shipped in the package, or a file.

ml_collections' `DEFINE_config_file` loads a Python file by path; the parser here first
maps a preset name (`gfrnet_tf.configs.PRESETS`) to the bundled file, so `--config smoke`
works from any installed wheel, with `--config.x.y=value` overrides as usual.
"""

from __future__ import annotations

from absl import flags
from ml_collections.config_flags import config_flags  # the module: its parser class too

from gfrnet_tf.configs import PRESETS, preset_path


class _PresetParser(config_flags.ConfigFileFlagParser):
    """`--config smoke` names a preset shipped in the package; anything else is a file."""

    def parse(self, path):
        return super().parse(preset_path(path))


def define_config_flag(default=None):
    """`--config NAME|FILE` plus `--config.x.y=value` overrides (ml_collections), locked."""
    holder = config_flags.DEFINE_config_file(
        "config",
        None,
        f"A preset ({', '.join(PRESETS)}) or a Python file with get_config().",
        lock_config=True,
    )
    flags.FLAGS["config"].parser = _PresetParser(name="config", lock_config=True)
    if default is not None:
        flags.FLAGS.set_default("config", default)
    return holder
