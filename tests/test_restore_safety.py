"""gfrnet-restore never loses a user's file and never aborts a batch over a name (issue 11).

Each case runs the command in a subprocess and asserts the exit status, one `error:` line
naming the file, no traceback, no file changed outside the output folder (hashes of the
whole tree before and after) and no partial output.
"""

import io
import os
import resource
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gfrnet_tf.errors import BadOutputError
from gfrnet_tf.io import load_image, save_image
from gfrnet_tf.restoration.outputs import NAME_MAX, OutputFolder, OutputFolderError
from support import SIZE, run_checkout, tree_hashes

# A photo name that fits the file system alone but not with `_face0_compare.png` added.
LONG_NAME = "x" * 240 + ".png"


def _face(seed):
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _write_face(path, seed):
    """A PNG written in place: `save_image`'s temporary name would not fit a 244-byte name."""
    buffer = io.BytesIO()
    Image.fromarray(_face(seed)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


@pytest.fixture
def photos(tmp_path):
    """`photos/` with a face crop and the user's own files named like outputs; a guide."""
    folder = tmp_path / "photos"
    folder.mkdir()
    save_image(folder / "a.png", _face(0))
    save_image(folder / "a_face0.png", _face(1))  # the user's, not ours
    save_image(folder / "a_restored.png", _face(2))
    save_image(tmp_path / "guide.png", _face(3))
    return folder


def restore(model, input_path, output, guide, *extra, env=None, wrap=(), preexec_fn=None):
    done = run_checkout(
        *wrap,
        sys.executable,
        "-m",
        "gfrnet_tf.apps.restore",
        f"--model={model[1]}",
        f"--input={input_path}",
        f"--guide={guide}",
        f"--output={output}",
        "--aligned",
        *extra,
        env=env,
        timeout=300,
        preexec_fn=preexec_fn,
        text=False,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    assert done.returncode in (0, 1), (done.returncode, stderr)  # never a signal
    return done.returncode, done.stdout.decode("ascii"), stderr


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("where", ["same", "through_symlink"])
def test_an_output_folder_in_the_input_folder_is_refused_before_anything_is_written(
    tiny_model, photos, where
):
    tmp = photos.parent
    (tmp / "link").symlink_to(photos)
    output = {"same": photos, "through_symlink": tmp / "link" / "out"}[where]
    before = tree_hashes(tmp)
    status, stdout, stderr = restore(tiny_model, photos, output, tmp / "guide.png")
    assert status == 1
    assert error_lines(stderr) == [
        f"error: {output}: is inside the input folder {photos}; choose a folder outside it"
    ]
    assert tree_hashes(tmp) == before  # the user's a_face0.png and a_restored.png intact
    assert not (photos / "out").exists()


def test_an_output_that_is_a_file_is_refused(tiny_model, photos):
    tmp = photos.parent
    output = tmp / "results.png"
    save_image(output, _face(4))
    before = tree_hashes(tmp)
    status, _, stderr = restore(tiny_model, photos, output, tmp / "guide.png")
    assert status == 1
    assert error_lines(stderr) == [f"error: {output}: is a file, not a folder"]
    assert tree_hashes(tmp) == before


def test_a_read_only_output_folder_is_one_line(tiny_model, photos, read_only_folder):
    tmp = photos.parent
    before = tree_hashes(tmp)
    status, _, stderr = restore(tiny_model, photos, read_only_folder, tmp / "guide.png")
    assert status == 1
    (line,) = error_lines(stderr)
    assert line.startswith(f"error: {read_only_folder}: cannot write here: ")
    assert tree_hashes(tmp) == before


def test_a_full_output_folder_stops_in_one_line_without_a_partial_photo(tiny_model, photos):
    """A small file-size limit stands in for a full disk: writes fail with EFBIG. The first
    output of a photo fits, the next does not: neither may be left behind."""
    tmp = photos.parent
    output = tmp / "out"
    # A 32x32 RGB PNG is at most ~3.2 KB even if incompressible, so the restored crop fits;
    # the compare grid holds two noise crops (degraded, guide): over 6 KB, it cannot.
    limit = 4096
    before = tree_hashes(tmp)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    status, stdout, stderr = restore(
        tiny_model, photos, output, tmp / "guide.png", preexec_fn=limit_file_size
    )
    assert status == 1
    errors = error_lines(stderr)
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {output}/a_face0_compare.png: cannot be written (File too large)"
    ), stderr
    assert sorted(os.listdir(output)) == []  # nothing of the photo is left behind
    assert tree_hashes(tmp) == before


def test_an_input_or_guide_is_never_replaced(tiny_model, photos):
    """The guide lies in the output folder under the name photo `a`'s result would take:
    that photo fails by name, the others are restored, the guide is unchanged."""
    tmp = photos.parent
    output = tmp / "out"
    output.mkdir()
    guide = output / "a_restored.png"
    save_image(guide, _face(5))
    (photos / "a_face0.png").unlink()
    (photos / "a_restored.png").unlink()
    save_image(photos / "b.png", _face(6))
    before = tree_hashes(tmp)
    status, stdout, stderr = restore(tiny_model, photos, output, guide)
    assert status == 1
    assert error_lines(stderr) == [f"error: {guide}: is an input or guide photo; not replaced"]
    after = tree_hashes(tmp)
    # An aligned crop is its one face: its restored face is `b_restored.png`.
    assert after.pop("out/b_face0_compare.png") and after.pop("out/b_restored.png")
    assert after == before  # nothing of photo a, the guide untouched
    assert "restored 1 file(s)" in stdout


def test_long_and_undecodable_names_under_a_strict_locale(tiny_model, tmp_path):
    """A 244-character name and names that are not UTF-8 or not ASCII are restored with the
    rest of the batch; a bad file with such a name is one escaped line; cut names are
    distinct and fit."""
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [LONG_NAME, "x" * 240 + ".jpg", "b\udcffad.png", "Jos\u00e9.png", "plain.png"]
    for seed, name in enumerate(names):
        _write_face(photos / name, seed)
    (photos / "br\udcffken.png").write_bytes(b"not a png")
    save_image(tmp_path / "guide.png", _face(9))
    output = tmp_path / "out"
    before = tree_hashes(photos)
    status, stdout, stderr = restore(
        tiny_model,
        photos,
        output,
        tmp_path / "guide.png",
        env={"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii:strict"},
    )
    assert status == 1, stderr
    assert error_lines(stderr) == [
        f"error: {photos}/br\\xffken.png: not an image file (unrecognised format)"
    ]
    assert "restored 5 file(s)" in stdout and "failed: bad_image 1" in stderr
    assert "b\\xffad.png: restored 1 face(s)" in stdout
    assert "Jos\\xe9.png: restored 1 face(s)" in stdout
    assert tree_hashes(photos) == before
    written = os.listdir(output)
    assert len(written) == 2 * len(names)  # NAME_restored.png, NAME_face0_compare.png
    assert max(len(os.fsencode(name)) for name in written) <= NAME_MAX - 14  # temp names fit
    for name in ("b\udcffad", "Jos\u00e9", "plain"):
        assert f"{name}_restored.png" in written
    long_stems = sorted(
        n.removesuffix("_restored.png")
        for n in written
        if n.startswith("xxx") and n.endswith("_restored.png")
    )
    assert len(long_stems) == 2 and long_stems[0] != long_stems[1]
    for stem in long_stems:
        assert stem[:-9] == "x" * (len(stem) - 9) and stem[-9] == "-"  # readable prefix + tag
    # Every whole-photo output is a complete image of its photo's size.
    restored = [load_image(output / n) for n in written if n.endswith("_restored.png")]
    assert len(restored) == len(names)
    assert all(image.shape == (SIZE, SIZE, 3) for image in restored)


def test_output_stems_are_distinct_deterministic_and_fit(tmp_path):
    (tmp_path / "photos").mkdir()
    folder = OutputFolder(tmp_path / "out", tmp_path / "photos", longest_suffix="_face999_x.png")
    photos = [
        tmp_path / "photos" / name
        for name in (
            "a.jpg",
            "a.png",
            "a_jpg.gif",  # `a_jpg` twice: both must be tagged apart
            "y" * 250 + "1.png",
            "y" * 250 + "2.png",  # equal once cut
            "\u00e9" * 120 + ".png",  # two bytes per character: cut by bytes, on a character
            "plain.png",
        )
    ]
    stems = folder.stems(photos)
    assert stems == folder.stems(list(reversed(photos)))  # order-free, rerun-stable
    assert len(set(stems.values())) == len(photos)
    assert stems[photos[1]] == "a_png" and stems[photos[-1]] == "plain"
    assert stems[photos[0]].startswith("a_jpg-") and stems[photos[2]].startswith("a_jpg-")
    budget = NAME_MAX - 14 - len("_face999_x.png")
    for stem in stems.values():
        assert len(os.fsencode(stem)) <= budget
    accented = stems[photos[5]]
    assert accented.startswith("\u00e9" * 50) and len(os.fsencode(accented)) >= budget - 1


def test_output_folder_checks(tmp_path):
    """The same checks in process, for the spellings of a folder inside the input; a
    refused folder is not created."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (tmp_path / "link").symlink_to(photos)
    for inside in (
        photos,
        photos / "deep" / "er",
        tmp_path / "elsewhere" / ".." / "photos" / "x",
        tmp_path / "link" / "x",
        Path(os.path.relpath(photos / "y")),
    ):
        with pytest.raises(OutputFolderError, match="inside the input folder"):
            OutputFolder(inside, photos)
    assert os.listdir(photos) == [] and not (tmp_path / "elsewhere").exists()
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(BadOutputError, match="cannot write here: Not a directory"):
        OutputFolder(tmp_path / "file.png" / "sub", photos)
    OutputFolder(tmp_path / "new" / "out", photos / "a.png")  # a single photo: any folder
    assert (tmp_path / "new" / "out").is_dir()
