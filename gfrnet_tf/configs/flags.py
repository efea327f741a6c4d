"""`--config NAME|FILE` for absl programs: a preset shipped in the package, or a file.

ml_collections' `DEFINE_config_file` loads a Python file by path; the parser here first
maps a preset name (`gfrnet_tf.configs.PRESETS`) to the bundled file, so `--config smoke`
works from any installed wheel, with `--config.x.y=value` overrides as usual. A default
preset is loaded only by `load_default_presets`, once the command knows it will run:
loading one imports TensorFlow, which a `--help` request should not wait for.
"""

from __future__ import annotations

from absl import flags
from ml_collections.config_flags import config_flags  # the module: its parser class too

from gfrnet_tf.configs import PRESETS, preset_path

# Flag name -> the preset it defaults to, set by `load_default_presets`.
_DEFAULT_PRESETS: dict[str, str] = {}


class _PresetParser(config_flags.ConfigFileFlagParser):
    """`--config smoke` names a preset shipped in the package; anything else is a file."""

    def parse(self, path):
        return super().parse(preset_path(path))


def define_config_flag(default=None):
    """`--config NAME|FILE` plus `--config.x.y=value` overrides (ml_collections), locked.

    A `default` takes effect through `load_default_presets`, which `apps.common.make_run`
    calls before parsing the command line.
    """
    holder = config_flags.DEFINE_config_file(
        "config",
        None,
        f"A preset ({', '.join(PRESETS)}) or a Python file with get_config().",
        lock_config=True,
    )
    flag = flags.FLAGS["config"]
    flag.parser = _PresetParser(name="config", lock_config=True)
    flag.default_as_str = None if default is None else repr(default)  # what --help shows
    if default is not None:
        _DEFAULT_PRESETS["config"] = default
    return holder


def load_default_presets() -> None:
    """Sets the deferred defaults of `define_config_flag` (before the command line is parsed:
    a `--config` given there still wins, and its overrides apply either way)."""
    for name, preset in _DEFAULT_PRESETS.items():
        flags.FLAGS.set_default(name, preset)
