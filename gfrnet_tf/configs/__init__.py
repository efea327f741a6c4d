"""Training presets shipped inside the package, and loading of configs.

A config is an `ml_collections.ConfigDict` with `input`, `model` and `train` sections.
`load_config` takes a preset name (`PRESETS`: any `pip install` has them), a Python file
whose `get_config()` returns one (big_vision style), or a run's saved `config.json`
(written and read by `gfrnet_tf.runs`, the owner of the run folder).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import ml_collections

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.runs import read_config_file

PRESETS = ("paper", "paper512", "official", "recommended", "smoke")


def preset_path(name_or_path: str) -> str:
    """The bundled file of a preset name; any other text is returned as it is (a path).

    Keeps a `:argument` suffix (ml_collections passes it to `get_config`).
    """
    name, colon, argument = str(name_or_path).partition(":")
    if name in PRESETS:
        return str(Path(__file__).with_name(f"{name}.py")) + colon + argument
    return str(name_or_path)


def load_config(name_or_path: str) -> ml_collections.ConfigDict:
    """A preset by name, a `get_config()` Python file or a saved `config.json`."""
    if name_or_path in PRESETS:
        return importlib.import_module(f"gfrnet_tf.configs.{name_or_path}").get_config()
    path = str(name_or_path)
    if not os.path.isfile(path):
        raise BadConfigError(path, f"no such config file (presets: {', '.join(PRESETS)})")
    if path.endswith(".json"):
        return read_config_file(path)
    spec = importlib.util.spec_from_file_location("gfrnet_user_config", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return module.get_config()
    except Exception as error:  # noqa: BLE001 (a config file is user code: any failure is a config error)
        raise BadConfigError(
            path, f"cannot build the config: {type(error).__name__}: {error}"
        ) from None
