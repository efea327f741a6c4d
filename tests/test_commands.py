"""Every console script of setup.cfg: `--help` lists the command's own flags, exits 0 and
never loads TensorFlow; either flag spelling works; the plumbing behind that."""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
from pathlib import Path

import pytest
from absl import flags

from gfrnet_tf.apps import common, quiet

ROOT = Path(__file__).resolve().parents[1]
# What defines a flag besides absl's DEFINE_*: the shared helpers and argparse.
HELPERS = {
    "define_config_flag": "config",
    "define_strategy_flag": "strategy",
    "define_test_protocol_flag": "test_protocol",
}


def console_scripts() -> dict[str, str]:
    """`{command: module}` from setup.cfg's console_scripts."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    entries = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return {
        name.strip(): target.split(":")[0].strip()
        for name, target in (entry.split("=") for entry in entries)
    }


def defined_flags(module: str) -> set[str]:
    """The flag names a command module defines, read from its source."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    names = {"debug"} if "make_run" in ast.unparse(tree) else set()
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        function = getattr(call.func, "attr", getattr(call.func, "id", ""))
        text = [a.value for a in call.args if isinstance(a, ast.Constant)]
        if function.startswith("DEFINE_") and text:
            names.add(text[0])
        elif function in HELPERS:
            names.add(HELPERS[function])
        elif function == "add_argument":  # argparse's own --help kin are not listed
            names.update(t[2:] for t in text if t.startswith("--") and "help" not in t)
    return names


SCRIPTS = console_scripts()


def test_setup_cfg_lists_the_commands():
    assert {"gfrnet-train", "gfrnet-restore", "gfrnet-demo", "gfrnet-prepare"} <= set(SCRIPTS)
    for module in SCRIPTS.values():
        assert "debug" in defined_flags(module), module


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_help_lists_the_commands_own_flags_and_exits_0_without_tensorflow(command, installed_wheel):
    bin_dir, _ = installed_wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # every import, on stderr
    for request in ("--help", "--helpshort", "-h"):
        done = subprocess.run(
            [str(bin_dir / command), request],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, (request, done.stdout[-2000:])
        for name in defined_flags(SCRIPTS[command]):  # absl writes booleans as --[no]name
            assert f"--{name}" in done.stdout.replace("--[no]", "--"), (command, request, name)
        imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
        assert "tensorflow" not in imported and "keras" not in imported, (command, request)
        assert "Try --helpfull" not in done.stdout  # absl's own answer, exit status 1


def test_dashed_flag_names_are_spelled_as_defined():
    known = {"image_size", "face_measures", "v"}.__contains__
    args = [
        "--image-size=64",
        "--image-size",
        "64",
        "--noface-measures",
        "-image-size=2",
        "--other-flag=1",
        "--output=--image-size",
        "--",
        "--image-size=3",
    ]
    assert common.spelled_as_defined(args, known) == [
        "--image_size=64",
        "--image_size",
        "64",
        "--noface_measures",
        "-image_size=2",
        "--other-flag=1",  # not a flag: left for the parser to report
        "--output=--image-size",  # a value is never touched
        "--",
        "--image-size=3",
    ]


def test_verbosity_is_read_before_the_flags_are_parsed():
    assert quiet.requested_verbosity(["prog", "--model", "runs/x"]) == quiet.QUIET
    assert quiet.requested_verbosity(["prog", "--model", "runs/x", "--verbosity=1"]) == 1
    assert quiet.requested_verbosity(["prog", "-v", "0", "--config.a.b=3"]) == 0
    assert quiet.requested_verbosity(["prog", "--verbosity=many"]) == quiet.QUIET
    assert "verbosity" in flags.FLAGS  # the real one is absl's, untouched by the peek


def test_native_stderr_is_captured_and_given_back_on_failure(capfd):
    lines = []
    with quiet.native_stderr_captured(lines):
        os.write(2, b"I0000 native start-up line\n")
    assert lines == ["I0000 native start-up line"] and capfd.readouterr().err == ""
    with pytest.raises(RuntimeError), quiet.native_stderr_captured([]):
        os.write(2, b"why it failed\n")
        raise RuntimeError
    assert capfd.readouterr().err == "why it failed\n"
