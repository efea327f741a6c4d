"""A missing optional package is a `MissingDependencyError` naming the extra that installs it,
in both pip forms; `OPTIONAL_EXTRAS` agrees with setup.cfg. Packages are "uninstalled" by
hiding them from the import system (the `hide_module` fixture)."""

import configparser
import importlib.metadata
import re
import sys

import numpy as np
import pytest

from gfrnet_tf.errors import OPTIONAL_EXTRAS, MissingDependencyError, optional_dependency
from support import ROOT

VIDEO_HINT = 'pip install "gfrnet_tf[video]" (in a checkout: pip install -e ".[video]")'


def _extras() -> dict[str, set[str]]:
    """setup.cfg's extras: `{extra: {normalised distribution name, ...}}`."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return {
        extra: {
            re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
            for line in requirements.strip().splitlines()
        }
        for extra, requirements in setup["options.extras_require"].items()
    }


def _provides(distribution: str, module: str) -> bool:
    """Whether the installed `distribution` holds the top-level `module` (read from its
    files: dlib-bin's own top_level.txt names only `_dlib_pybind11`)."""
    files = importlib.metadata.distribution(distribution).files or []
    return any(path.parts[0].split(".")[0] == module for path in files)


@pytest.mark.parametrize("module", sorted(OPTIONAL_EXTRAS))
def test_each_optional_package_comes_with_its_extra(module):
    """The extra named for an import name installs it (so the message's `pip install`
    command is the right one), and `dev` has it (so the suite runs it)."""
    extras = _extras()
    extra = OPTIONAL_EXTRAS[module]
    assert any(_provides(name, module) for name in extras[extra]), (module, extra)
    assert extras[extra] <= extras["dev"]


def test_the_message_names_the_extra_in_both_pip_forms(hide_module, monkeypatch):
    hide_module("av")
    with pytest.raises(MissingDependencyError) as raised:
        with optional_dependency():
            import av  # noqa: F401
    assert str(raised.value) == f"av: not installed: {VIDEO_HINT}"
    assert raised.value.reason == "missing_dependency" and raised.value.extra == "video"
    monkeypatch.delitem(sys.modules, "gfrnet_tf.video.reader", raising=False)
    with pytest.raises(MissingDependencyError) as raised:
        with optional_dependency("clip.mp4"):  # what needed it, e.g. the file of a batch
            import gfrnet_tf.video.reader  # noqa: F401  (imports av at its top)
    assert str(raised.value) == f"clip.mp4: needs av, which is not installed: {VIDEO_HINT}"


def test_an_import_error_a_package_raises_in_its_own_words_still_names_the_extra():
    """Beam's Dask runner re-raises a missing `dask.distributed` as its own ImportError."""
    with pytest.raises(MissingDependencyError, match=r"gfrnet_tf\[dask\]"):
        with optional_dependency("--runner"):
            try:
                raise ModuleNotFoundError("No module named 'dask'", name="dask")
            except ImportError:
                raise ImportError("DaskRunner is not available") from None


def test_other_import_errors_pass_unchanged():
    with pytest.raises(ModuleNotFoundError, match="gfrnet_no_such_module"):
        with optional_dependency():
            import gfrnet_no_such_module  # noqa: F401


def test_litert_interpreter_without_litert(hide_module):
    from gfrnet_tf.export.tflite import litert_interpreter

    hide_module("ai_edge_litert")
    with pytest.raises(MissingDependencyError, match=r'^ai_edge_litert: .*"gfrnet_tf\[litert\]"'):
        litert_interpreter(b"")


def test_dlib_landmarks_without_dlib_fail_when_made_not_at_each_photo(hide_module):
    """A batch (gfrnet-prepare) makes its landmark source first: no photo is rejected for a
    package."""
    from gfrnet_tf.faces import DlibLandmarks

    hide_module("dlib")
    with pytest.raises(MissingDependencyError, match=r'^dlib: .*"gfrnet_tf\[landmarks\]"'):
        DlibLandmarks()


def test_serving_requests_without_tensorflow_serving_api(hide_module):
    from gfrnet_tf import serving_client

    hide_module("tensorflow_serving")
    images = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(MissingDependencyError, match=r"gfrnet_tf\[serving\]"):
        serving_client.grpc_request(images, images, "gfrnet")


def test_onnx_export_without_tf2onnx_names_the_flag(hide_module):
    from gfrnet_tf.export.onnx_export import export_onnx

    hide_module("tf2onnx")
    with pytest.raises(MissingDependencyError) as raised:
        export_onnx(None, "never.onnx", 32)
    assert raised.value.source == "--formats" and raised.value.extra == "onnx"


def test_prepare_on_dask_without_dask_is_one_line(hide_module, monkeypatch, capsys, tmp_path):
    """gfrnet-prepare builds the pipeline, then Beam's Dask runner needs `dask`."""
    from gfrnet_tf.apps import prepare as prepare_app

    (tmp_path / "photos" / "alice").mkdir(parents=True)
    (tmp_path / "photos" / "alice" / "a.png").write_bytes(b"")
    hide_module("dask")
    for loaded in [m for m in sys.modules if m.startswith("apache_beam.runners.dask")]:
        monkeypatch.delitem(sys.modules, loaded)  # imported afresh, as in a new process
    status = prepare_app.main(
        [
            "--input",
            str(tmp_path / "photos"),
            "--output",
            str(tmp_path / "out"),
            "--runner",
            "apache_beam.runners.dask.dask_runner.DaskRunner",
        ]
    )
    assert status == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        'error: --runner: needs dask, which is not installed: pip install "gfrnet_tf[dask]" '
        '(in a checkout: pip install -e ".[dask]")'
    )


def test_a_library_run_without_pyav_names_the_video_extra_for_each_clip(
    hide_module, monkeypatch, tmp_path
):
    """gfrnet-restore and gfrnet-web take their clip stages from `video.clip_stages`:
    without PyAV each clip is a `faces.csv` row and an `error:` line naming the extra."""
    import csv

    from gfrnet_tf.restoration.library import (
        NoClipStages,
        RestoreSettings,
        default_options,
        restore_library,
    )
    from gfrnet_tf.restoration.outputs import OutputFolder
    from gfrnet_tf.video import clip_stages

    hide_module("av")
    for loaded in [m for m in sys.modules if m.startswith("gfrnet_tf.video.")]:
        monkeypatch.delitem(sys.modules, loaded)  # imported afresh, as in a new process
    stages = clip_stages(identity_every=0)
    assert isinstance(stages, NoClipStages)
    root = tmp_path / "library"
    (root / "films").mkdir(parents=True)
    (root / "films" / "wedding.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    warned = []
    summary = restore_library(
        root,
        OutputFolder(tmp_path / "out", root),
        None,  # no clip is analysed, so no model and no face analyser is needed
        None,
        RestoreSettings(32),
        default_options(),
        clips=stages,
        progress=False,
        warn=lambda path, problem: warned.append((str(path), problem)),
    )
    problem = f"needs av, which is not installed: {VIDEO_HINT}"
    assert warned == [(str(root / "films" / "wedding.mp4"), problem)]
    rows = list(csv.DictReader((tmp_path / "out" / "faces.csv").open()))
    assert [(r["photo"], r["face"], r["action"]) for r in rows] == [
        ("films/wedding.mp4", "-1", f"skipped: {problem}")
    ]
    assert (summary.files, summary.problems) == (1, 1)
