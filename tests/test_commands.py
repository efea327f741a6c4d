"""Every console script of setup.cfg: `--help` lists the command's own flags, exits 0 and
never loads TensorFlow; a positional word a command does not take is one line,
`error: command line: unexpected argument 'x'`, and exit 1 before anything is read or
written (`apps.common.check_arguments`); either flag spelling works; the plumbing behind it.

The console scripts come from setup.cfg, so a new command is covered (and must get its
required flags in REQUIRED). They all run one way: as their entry points, each in a child
forked by one worker process (this file as a script, `run_scripts`), which imports
TensorFlow once for all of them or, for help requests, never.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import signal
import sys
import tempfile
import traceback

import pytest
from absl import flags

from gfrnet_tf.apps import common, quiet
from gfrnet_tf.errors import BadConfigError
from support import ROOT, run_checkout

# What defines a flag besides absl's DEFINE_*: the shared helpers and argparse.
HELPERS = {
    "define_config_flag": "config",
    "define_strategy_flag": "strategy",
    "define_test_protocol_flag": "test_protocol",
}
# Each command's required flags (and arguments), pointing into `{out}`, which must still
# not exist afterwards: the command stopped at its command line.
REQUIRED = {
    "gfrnet-demo": ["--workdir={out}"],
    "gfrnet-train": ["--config=smoke", "--workdir={out}", "--data={out}/data"],
    "gfrnet-evaluate": ["--model={out}/model.keras", "--data={out}/data", "--output={out}"],
    "gfrnet-ablate": ["--data={out}/data", "--workdir={out}"],
    "gfrnet-restore": [
        "--model={out}/model.keras",
        "--input={out}/photos",
        "--guide={out}/guide.png",
        "--output={out}",
    ],
    "gfrnet-export": ["--model={out}/model.keras", "--output={out}"],
    "gfrnet-prepare": ["--input", "{out}/photos", "--output", "{out}"],
    "gfrnet-data-service": ["--dispatcher=grpc://127.0.0.1:1"],
    "gfrnet-convert-vgg-face": ["{out}/vgg_face_dag.pth", "{out}/vgg_face.npz"],
    "gfrnet-web": ["--model={out}/model.keras", "--port=0"],
}
HELP_REQUESTS = ("--help", "--helpshort", "-h")


def console_scripts() -> dict[str, str]:
    """`{command: "module:function"}` of every console script setup.cfg declares."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


SCRIPTS = console_scripts()


def defined_flags(entry_point: str) -> set[str]:
    """The flag names a command's module defines, read from its source."""
    module = entry_point.split(":")[0]
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


def run_scripts(cases, with_tensorflow: bool) -> list[dict]:
    """Runs each `(entry point, argv)` as the console script does, in one worker process
    (`with_tensorflow`: TensorFlow imported before the children are forked); per case its
    `status`, `stdout`, `stderr` and whether TensorFlow or Keras got `loaded`."""
    done = run_checkout(sys.executable, __file__, json.dumps([with_tensorflow, cases]), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(with_tensorflow: bool, cases) -> list[dict]:
    """`run_scripts`' side in the worker process: a forked child per case."""
    import importlib

    if with_tensorflow:
        import keras  # noqa: F401  (with TensorFlow: what every command imports first)
    assert with_tensorflow or "tensorflow" not in sys.modules  # else no child could tell
    results = []
    for entry_point, argv in cases:
        files = [tempfile.TemporaryFile() for _ in range(3)]  # stdout, stderr, loaded
        pid = os.fork()
        if pid == 0:  # the child never returns into this loop
            code = 70
            try:
                os.dup2(files[0].fileno(), 1)
                os.dup2(files[1].fileno(), 2)
                signal.alarm(120)  # a command that went past its command line would hang
                module, function = entry_point.split(":")
                sys.argv = argv
                getattr(importlib.import_module(module), function)()
                code = 0
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else 1
            except BaseException:  # noqa: BLE001 (reported as the child's stderr)
                traceback.print_exc()
            finally:
                loaded = any(name in sys.modules for name in ("tensorflow", "keras"))
                files[2].write(b"1" if loaded else b"")
                for stream in (sys.stdout, sys.stderr, files[2]):
                    stream.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        texts = []
        for stream in files:
            stream.seek(0)
            texts.append(stream.read().decode(errors="replace"))
            stream.close()
        results.append(
            {
                "status": os.waitstatus_to_exitcode(status),
                "stdout": texts[0],
                "stderr": texts[1],
                "loaded": bool(texts[2]),
            }
        )
    return results


def test_setup_cfg_lists_the_commands():
    assert {"gfrnet-train", "gfrnet-restore", "gfrnet-demo", "gfrnet-prepare"} <= set(SCRIPTS)
    assert set(SCRIPTS) == set(REQUIRED), "a new command needs its required flags in REQUIRED"
    for entry_point in SCRIPTS.values():
        assert "debug" in defined_flags(entry_point), entry_point


@pytest.fixture(scope="module")
def helped():
    """`{(command, request): result}` of every command asked for help."""
    cases = [
        (SCRIPTS[name], [name, request]) for name in sorted(SCRIPTS) for request in HELP_REQUESTS
    ]
    results = run_scripts(cases, with_tensorflow=False)
    return dict(zip([(argv[0], argv[1]) for _, argv in cases], results))


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_help_lists_the_commands_own_flags_and_exits_0_without_tensorflow(helped, command):
    for request in HELP_REQUESTS:
        result = helped[command, request]
        assert result["status"] == 0, (request, result["stdout"][-2000:], result["stderr"])
        assert not result["loaded"], (command, request)
        listing = result["stdout"].replace("--[no]", "--")  # absl writes booleans as --[no]name
        for name in defined_flags(SCRIPTS[command]):
            assert f"--{name}" in listing, (command, request, name)
        assert "Try --helpfull" not in result["stdout"]  # absl's own answer, exit status 1


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """`{command: (result, out folder)}`: every command with an extra word, and the
    VGG-Face converter with one argument short (`"short"`)."""
    root = tmp_path_factory.mktemp("commands")
    cases, outs = [], {}
    for name, entry_point in sorted(SCRIPTS.items()):
        outs[name] = root / name / "out"
        (root / name).mkdir()
        required = [flag.format(out=outs[name]) for flag in REQUIRED[name]]
        cases.append((entry_point, [name, *required, "x"]))
    converter = "gfrnet-convert-vgg-face"
    cases.append((SCRIPTS[converter], [converter, str(root / "in.pth")]))
    results = run_scripts(cases, with_tensorflow=True)
    return {
        name: (result, outs.get(name)) for name, result in zip([*sorted(SCRIPTS), "short"], results)
    }


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_an_extra_word_is_one_line_before_any_work(refused, command):
    result, out = refused[command]
    assert result["status"] == 1, result["stderr"][-2000:]
    lines = result["stderr"].strip().splitlines()
    assert lines[-1] == "error: command line: unexpected argument 'x'"
    assert "Traceback" not in result["stderr"]
    assert not out.exists()


def test_a_missing_argument_is_named(refused):
    result, _ = refused["short"]
    assert result["status"] == 1, result["stderr"][-2000:]
    lines = result["stderr"].strip().splitlines()
    assert lines[-1] == "error: command line: missing argument OUT.npz"


@pytest.mark.parametrize(
    "given, expected, problem",
    [
        (["x", "y"], (), "unexpected arguments 'x', 'y'"),
        (["a", "b", "c"], ("IN", "OUT"), "unexpected argument 'c'"),
        ([], ("IN", "OUT"), "missing arguments IN OUT"),
    ],
)
def test_check_arguments_names_what_is_extra_or_missing(given, expected, problem):
    common.check_arguments([f"{name}.file" for name in expected], expected)  # all it takes
    with pytest.raises(BadConfigError) as raised:
        common.check_arguments(given, expected)
    assert (raised.value.source, raised.value.problem) == ("command line", problem)


def test_prepare_passes_beam_options_and_their_values_but_no_stray_word(tmp_path):
    """gfrnet-prepare hands unknown options to Beam: a word after `--name` is its value, as
    Beam reads it; any other word is refused. Dashed spellings of its own flags are its."""
    from gfrnet_tf.apps.prepare import parse_args

    base = ["--input", str(tmp_path), "--output", str(tmp_path / "out")]
    beam = ["--runner", "DirectRunner", "--direct_num_workers=2", "--job_name", "x"]
    settings, beam_args, _ = parse_args([*base, "--image-size", "48", *beam])
    assert beam_args == beam and settings.faces.size == 48
    for stray in (["x"], [*beam, "x"], ["--direct_num_workers=2", "x"]):
        with pytest.raises(BadConfigError, match="unexpected argument 'x'"):
            parse_args([*base, *stray])


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


if __name__ == "__main__":
    print(json.dumps(_worker(*json.loads(sys.argv[1]))))


def test_the_commands_tests_import_in_process_can_share_one_process():
    """Each command defines its absl flags at import, so two test modules importing
    commands that share a flag name (`--model` in gfrnet-restore and gfrnet-web) fail
    with DuplicateFlagError whenever xdist puts them on one worker."""
    imported = set()
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "gfrnet_tf.apps":
                imported |= {f"gfrnet_tf.apps.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "gfrnet_tf.apps."
            ):
                imported.add(node.module)
    assert "gfrnet_tf.apps.restore" in imported  # the walk finds what tests/test_archive.py does
    statement = "; ".join(f"import {module}" for module in sorted(imported))
    done = run_checkout(sys.executable, "-c", statement)
    assert done.returncode == 0, done.stderr[-2000:]
