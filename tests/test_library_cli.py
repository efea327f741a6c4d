"""gfrnet-restore on a library full of hazards: one `error:` line or one `faces.csv` row each.

No face anywhere, unreadable and empty photos, a broken clip among the photos, a symlink
loop, a name that is not UTF-8, 1500 files in one folder, a guide folder without a face
and an empty person folder: the run goes on past each, and nothing outside OUT changes.
"""

import csv
import json
import os

import numpy as np
import pytest

from people_fixtures import portrait, write
from support import run_module, tree_hashes

MANY = 1500


def _restore(model, root, out, *extra):
    done = run_module(
        "gfrnet_tf.apps.restore",
        f"--model={model}",
        f"--input={root}",
        f"--output={out}",
        *extra,
        text=False,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    return done.returncode, done.stdout.decode("utf-8", "replace"), stderr


@pytest.mark.slow
def test_every_hazard_is_one_line_or_one_row_and_nothing_outside_out_changes(tiny_model, tmp_path):
    root, guides = tmp_path / "library", tmp_path / "guides"
    write(root, {"noface.png": np.full((64, 64, 3), 128, np.uint8)})
    write(
        guides,
        {
            "obama/obama.jpg": portrait("obama"),
            "landscape/sky.png": np.full((80, 80, 3), 200, np.uint8),
        },
    )
    (guides / "empty").mkdir()
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (root / "empty.png").write_bytes(b"")
    (root / "film.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a film")
    os.symlink(root, root / "loop")
    write(tmp_path / "tmp", {"face.jpg": portrait("obama")})
    os.rename(tmp_path / "tmp" / "face.jpg", os.fsencode(root) + b"/caf\xe9.jpg")
    many = root / "many"
    many.mkdir()
    write(tmp_path / "tmp", {"tiny.png": np.zeros((8, 8, 3), np.uint8)})
    data = (tmp_path / "tmp" / "tiny.png").read_bytes()
    for k in range(MANY):
        (many / f"{k:05d}.png").write_bytes(data)
    before = tree_hashes(tmp_path)
    out = tmp_path / "out"

    status, stdout, stderr = _restore(tiny_model[1], root, out, f"--guides={guides}")

    assert status == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    for name in ("broken.jpg", "empty.png", "film.mp4", "guides/empty: empty person folder"):
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert sum("library/loop: symlink loop: folder not followed" in line for line in errors) == 1
    assert sum("guides/landscape: none of its 1 photo(s)" in line for line in errors) == 1
    assert sum("/many/" in line for line in errors) == MANY
    assert len(errors) == 6 + MANY
    rows = list(csv.DictReader((out / "faces.csv").open(encoding="utf-8")))
    by_photo = {row["photo"]: row for row in rows}
    assert len(rows) == 6 + MANY  # every file once (the face photo: its one face)
    assert by_photo["noface.png"]["action"].startswith("skipped: no face found")
    assert by_photo["loop"]["action"] == "skipped: symlink loop: folder not followed"
    assert by_photo["film.mp4"]["face"] == "-1"
    face = by_photo["caf\\xe9.jpg"]  # printable: the byte escaped
    assert face["person"] == "obama" and face["action"] == "kept: as good as the guides of obama"
    assert json.loads((out / "people.json").read_text())["people"][0]["name"] == "obama"
    after = tree_hashes(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out")} == before

    # no photo at all: an empty report, no error
    (tmp_path / "nothing").mkdir()
    status, stdout, stderr = _restore(tiny_model[1], tmp_path / "nothing", tmp_path / "out2")
    assert status == 0, stderr
    assert (tmp_path / "out2" / "faces.csv").read_text().count("\n") == 1
    assert json.loads((tmp_path / "out2" / "people.json").read_text()) == {"people": []}
