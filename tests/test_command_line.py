"""Every command treats positional arguments by one rule (`gfrnet_tf.apps.common.check_arguments`):
a word it does not take is `error: command line: unexpected argument 'x'` and exit 1, before
anything is read or written; a missing one is named.

The console scripts come from setup.cfg, so a new command is covered (and must get its
required flags below). They run as their entry points in children forked by one worker
process (this file as a script): TensorFlow is imported once, not once per command.
"""

import configparser
import json
import os
import signal
import sys
import traceback

import pytest

from gfrnet_tf.apps.common import check_arguments
from gfrnet_tf.apps.prepare import parse_args
from gfrnet_tf.errors import BadConfigError
from support import ROOT, run_checkout

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


def _console_scripts() -> dict[str, str]:
    """`name: "module:function"` of every console script setup.cfg declares."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def _run_commands(cases):
    """Worker: runs each `(entry point, argv)` in a forked child; its exit status and stderr."""
    import importlib

    import keras  # noqa: F401  (with TensorFlow: what every command imports first)

    results = []
    for entry_point, argv in cases:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns into this loop
            code = 70
            try:
                os.close(read)
                os.dup2(write, 2)
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
                signal.alarm(120)  # a command that went past its command line would hang
                module, function = entry_point.split(":")
                sys.argv = argv
                getattr(importlib.import_module(module), function)()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
            except BaseException:  # noqa: BLE001 (reported as the child's stderr)
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(write)
        with os.fdopen(read, errors="replace") as stream:
            text = stream.read()
        _, status = os.waitpid(pid, 0)
        results.append((os.waitstatus_to_exitcode(status), text))
    return results


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """`{name: (exit status, stderr, out folder)}`: every command with an extra word, and
    the VGG-Face converter with one argument short."""
    scripts = _console_scripts()
    assert set(scripts) == set(REQUIRED), "a new command needs its required flags in REQUIRED"
    root = tmp_path_factory.mktemp("commands")
    cases, outs = [], {}
    for name, entry_point in sorted(scripts.items()):
        outs[name] = root / name / "out"
        (root / name).mkdir()
        flags = [flag.format(out=outs[name]) for flag in REQUIRED[name]]
        cases.append((entry_point, [name, *flags, "x"]))
    converter = scripts["gfrnet-convert-vgg-face"]
    cases.append((converter, ["gfrnet-convert-vgg-face", str(root / "in.pth")]))
    done = run_checkout(sys.executable, __file__, json.dumps(cases), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        name: (*result, outs.get(name))
        for name, result in zip([*sorted(scripts), "short"], results)
    }


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_an_extra_word_is_one_line_before_any_work(refused, name):
    status, stderr, out = refused[name]
    assert status == 1, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "error: command line: unexpected argument 'x'"
    assert "Traceback" not in stderr
    assert not out.exists()


def test_a_missing_argument_is_named(refused):
    status, stderr, _ = refused["short"]
    assert status == 1, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "error: command line: missing argument OUT.npz"


@pytest.mark.parametrize(
    "given, expected, problem",
    [
        (["x", "y"], (), "unexpected arguments 'x', 'y'"),
        (["a", "b", "c"], ("IN", "OUT"), "unexpected argument 'c'"),
        ([], ("IN", "OUT"), "missing arguments IN OUT"),
    ],
)
def test_check_arguments_names_what_is_extra_or_missing(given, expected, problem):
    check_arguments([f"{name}.file" for name in expected], expected)  # what it takes: no error
    with pytest.raises(BadConfigError) as raised:
        check_arguments(given, expected)
    assert (raised.value.source, raised.value.problem) == ("command line", problem)


def test_prepare_passes_beam_options_and_their_values_but_no_stray_word(tmp_path):
    """gfrnet-prepare hands unknown options to Beam: a word after `--name` is its value, as
    Beam reads it; any other word is refused."""
    base = ["--input", str(tmp_path), "--output", str(tmp_path / "out")]
    beam = ["--runner", "DirectRunner", "--direct_num_workers=2", "--job_name", "x"]
    _, beam_args, _ = parse_args([*base, *beam])
    assert beam_args == beam
    for stray in (["x"], [*beam, "x"], ["--direct_num_workers=2", "x"]):
        with pytest.raises(BadConfigError, match="unexpected argument 'x'"):
            parse_args([*base, *stray])


if __name__ == "__main__":
    print(json.dumps(_run_commands(json.loads(sys.argv[1]))))
