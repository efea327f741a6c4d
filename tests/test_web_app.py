"""The page's server: visitors kept apart, hostile requests answered, work off the loop.

Through Starlette's test client (the app in-process, lifespan included) with the real
library and the tiny model; the browser's view is `test_web_browser.py`.
"""

import io
import os
import re
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from gfrnet_tf.faces import detect_faces
from gfrnet_tf.restoration.library import RestoreSettings
from gfrnet_tf.web import Studio, UploadLimits, load_studio, make_app
from gfrnet_tf.web.views import FACE_PX
from support import installed_env

PEOPLE = Path(__file__).parent / "data" / "people"
SIZE = 32
LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def studio(tiny_model):
    return load_studio(tiny_model[1], SIZE)


def _upload(client, name, data=None, person=None):
    data = (PEOPLE / name).read_bytes() if data is None else data
    return client.post(
        "/api/upload", files={"file": (name, data)}, data={"person": person} if person else None
    )


def _finished(client, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get("/api/state").json()
        if state["progress"]["state"] not in ("waiting", "running"):
            return state
        time.sleep(0.2)
    raise AssertionError("the work did not finish")


def test_visitors_never_see_each_other(studio):
    app = make_app(studio)
    with TestClient(app, base_url=LOCAL) as alice, TestClient(app, base_url=LOCAL) as bob:
        assert _upload(alice, "obama.jpg").status_code == 200
        alice_state = alice.get("/api/state").json()
        (photo,) = alice_state["uploads"]
        assert alice.get(f"/api/files/{photo['thumb']}").status_code == 200
        # Bob has no cookie of Alice's: her ids mean nothing to him.
        assert bob.get("/api/state").json()["uploads"] == []
        assert bob.get(f"/api/files/{photo['thumb']}").status_code == 404
        assert _upload(bob, "biden.jpg").status_code == 200
        (bobs,) = bob.get("/api/state").json()["uploads"]
        assert bobs["name"] == "biden.jpg" and alice.get("/api/state").json() == alice_state
        bob_thumb = bob.get(f"/api/files/{bobs['thumb']}").content
        assert bob_thumb != alice.get(f"/api/files/{photo['thumb']}").content
        folders = {v.folder for v in app.state.visitors._visitors.values()}
        assert len(folders) == 2 and all(f.parent == app.state.visitors.root for f in folders)
        # A stolen-looking cookie that is not a visitor's is nobody.
        stranger = TestClient(app, base_url=LOCAL, cookies={"gfrnet_visitor": "guess"})
        assert stranger.get(f"/api/files/{photo['thumb']}").status_code == 404
        root = app.state.visitors.root
        assert root.is_dir()
    assert not root.exists()  # the server stopped: every visitor's files are gone


def test_hostile_requests_get_a_message_and_the_server_goes_on(studio):
    limits = UploadLimits(max_file_bytes=1 << 20, max_files=3)
    app = make_app(studio, limits=limits, max_visitors=2)
    with TestClient(app, base_url=LOCAL) as client:
        big = client.post("/api/upload", files={"file": ("big.jpg", bytes(3 << 20))})
        assert big.status_code == 413 and "larger than 1 MB" in big.json()["error"]

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(40):
                yield bytes(64 << 10)

        streamed = client.post(
            "/api/upload",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert streamed.status_code == 413
        garbled = client.post(
            "/api/upload",
            content=b"--x\r\nnonsense",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert garbled.status_code == 400 and "error" in garbled.json()
        assert client.post("/api/upload", data={"person": "x"}).status_code == 400
        refused = _upload(client, "notes.jpg", b"not a photo").json()
        assert refused == {
            "added": [],
            "refused": [
                {
                    "name": "notes.jpg",
                    "problem": "not a photo (JPEG, PNG, WebP, BMP, TIFF), a clip or a zip of them",
                }
            ],
        }
        assert client.post("/api/faces/face1", json={"exclude": True}).status_code == 404
        assert client.post("/api/restore", json={}).status_code == 400  # nothing added
        assert client.get("/api/files/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert client.get("/api/restored.zip").status_code == 404
        # A page reached under another host name (DNS rebinding) is not served.
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
        page = client.get("/")
        assert (
            page.status_code == 200
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        assert client.get("/static/page.js").status_code == 200
        added = _upload(client, "obama.jpg", person="../../etc <b>Oma</b>").json()["added"]
        assert (
            added and client.get("/api/state").json()["people"][0]["name"] == "../../etc <b>Oma</b>"
        )
        visitor = next(iter(app.state.visitors._visitors.values()))
        assert sorted(p.name for p in (visitor.folder / "guides").iterdir()) == ["person-01"]
        with TestClient(app, base_url=LOCAL) as second:
            assert _upload(second, "biden.jpg").status_code == 200
            with TestClient(app, base_url=LOCAL) as third:
                full = _upload(third, "biden.jpg")
                assert full.status_code == 503 and "too many people" in full.json()["error"]
        forgotten = client.post("/api/forget")
        assert forgotten.status_code == 200 and not visitor.folder.exists()


def test_an_upload_removed_is_deleted_and_its_room_given_back(studio):
    limits = UploadLimits(max_files=2)
    app = make_app(studio, limits=limits)
    with TestClient(app, base_url=LOCAL) as alice, TestClient(app, base_url=LOCAL) as bob:
        _upload(alice, "obama.jpg")
        _upload(alice, "obama2.jpg", person="Barack")
        full = _upload(alice, "biden.jpg").json()["refused"]
        assert full and "more than 2 files" in full[0]["problem"]
        visitor = next(iter(app.state.visitors._visitors.values()))
        state = alice.get("/api/state").json()
        (photo,) = state["uploads"]
        (guide,) = state["people"][0]["guides"]
        photo_file = visitor.uploads[photo["id"]].path
        _upload(bob, "notes.jpg", b"not a photo")  # ids are per visitor: Bob's are others
        _upload(bob, "biden.jpg")
        (bobs,) = bob.get("/api/state").json()["uploads"]
        assert bobs["id"] != photo["id"]
        # Another visitor's id, an unknown one: nothing happens to anyone's files.
        assert bob.delete(f"/api/uploads/{photo['id']}").status_code == 404
        assert alice.delete("/api/uploads/u999").status_code == 404
        assert alice.delete("/api/uploads/..%2Flibrary").status_code == 404
        assert photo_file.is_file() and visitor.budget.files == 2

        assert alice.delete(f"/api/uploads/{photo['id']}").json() == {"removed": photo["id"]}
        assert not photo_file.exists()
        assert alice.get(f"/api/files/{photo['thumb']}").status_code == 404
        guide_bytes = (PEOPLE / "obama2.jpg").stat().st_size
        assert (visitor.budget.files, visitor.budget.bytes) == (1, guide_bytes)
        assert alice.delete(f"/api/uploads/{photo['id']}").status_code == 404  # gone
        assert _upload(alice, "biden.jpg").json()["added"]  # its room is free again

        assert alice.delete(f"/api/uploads/{guide['id']}").status_code == 200
        state = alice.get("/api/state").json()
        assert state["people"] == [] and [u["name"] for u in state["uploads"]] == ["biden.jpg"]
        assert not (visitor.folder / "guides" / "person-01").exists()  # no empty person left
        biden_bytes = (PEOPLE / "biden.jpg").stat().st_size
        assert (visitor.budget.files, visitor.budget.bytes) == (1, biden_bytes)
        assert sorted(p.name for p in (visitor.folder / "view").iterdir()) == [
            f"{visitor.uploads[state['uploads'][0]['id']].path.stem}-thumb.jpg"
        ]
        assert bob.get("/api/state").json()["uploads"] == [bobs]  # Bob's file is his still


class _Gate:
    """A restorer that waits until the test opens the gate: long work, on demand."""

    def __init__(self, restorer):
        self.restorer = restorer
        self.entered = threading.Event()
        self.open = threading.Event()

    def __call__(self, degraded, guide):
        self.entered.set()
        assert self.open.wait(120)
        return self.restorer(degraded, guide)


def test_long_work_never_blocks_other_requests_and_waits_its_turn(studio):
    gate = _Gate(studio.restorer)
    gated = Studio(gate, RestoreSettings(SIZE), studio.analyser)
    app = make_app(gated)
    with TestClient(app, base_url=LOCAL) as alice, TestClient(app, base_url=LOCAL) as bob:
        _upload(alice, "obama.jpg")
        _upload(alice, "obama2.jpg", person="Barack")
        _upload(bob, "biden.jpg")
        assert alice.post("/api/restore", json={"restore_all": True}).status_code == 202
        assert gate.entered.wait(120)  # Alice's faces are in the model now, held there
        started = time.monotonic()
        progress = alice.get("/api/state").json()["progress"]
        assert progress["state"] == "running" and progress["stage"] == "Restoring faces"
        assert alice.post("/api/restore", json={}).status_code == 409  # one run per visitor
        (upload,) = alice.get("/api/state").json()["uploads"]
        refused = alice.delete(f"/api/uploads/{upload['id']}")
        assert refused.status_code == 409 and "start over" in refused.json()["error"]
        assert bob.get("/").status_code == 200
        assert _upload(bob, "biden.jpg").status_code == 200  # Bob adds files meanwhile
        assert bob.post("/api/restore", json={}).status_code == 202
        waiting = bob.get("/api/state").json()["progress"]
        assert waiting["state"] == "waiting" and waiting["queue_position"] == 1
        assert time.monotonic() - started < 30  # none of it waited for the model
        gate.open.set()
        done = _finished(alice)
        assert done["progress"]["state"] == "done"
        assert done["results"]["photos"][0]["faces"][0]["status"] == "restored"
        assert _finished(bob)["progress"]["state"] == "done"


def test_a_face_kept_and_given_another_guide(studio):
    app = make_app(studio)
    with TestClient(app, base_url=LOCAL) as client:
        _upload(client, "obama.jpg")
        for guide in ("obama2.jpg", "obama3.jpg"):
            _upload(client, guide, person="Barack")
        blank = io.BytesIO()
        Image.new("RGB", (64, 64), "white").save(blank, format="PNG")
        _upload(client, "wall.png", blank.getvalue(), person="Nobody")
        client.post("/api/restore", json={"restore_all": True})
        results = _finished(client)["results"]
        # The library's words, about the person's folder shown under the name typed.
        (unused,) = results["guide_problems"]
        assert unused["name"] == "Nobody" and "face" in unused["problem"], unused
        (photo,) = results["photos"]
        (face,) = photo["faces"]
        assert face["status"] == "restored" and photo["restored"]
        (upload,) = client.get("/api/state").json()["uploads"]
        refused = client.delete(f"/api/uploads/{upload['id']}")  # its results are on the page
        assert refused.status_code == 409 and "start over" in refused.json()["error"]
        folder = next(iter(app.state.visitors._visitors.values())).folder
        pictures = sorted(p.name for p in (folder / "run").iterdir())
        assert len(pictures) == 4  # the face before and after, the two guides
        labels = {g["id"]: g["label"] for g in results["guides"]}
        assert sorted(labels.values()) == ["Barack: obama2.jpg", "Barack: obama3.jpg"]
        (other,) = face["choices"]
        assert client.post(f"/api/faces/{face['id']}", json={"guide": other}).status_code == 202
        changed = _finished(client)["results"]["photos"][0]["faces"][0]
        assert changed["guide"]["id"] == other and changed["status"] == "restored"
        assert client.post(f"/api/faces/{face['id']}", json={"exclude": True}).status_code == 202
        kept = _finished(client)["results"]["photos"][0]
        assert kept["restored"] is None and kept["faces"][0]["excluded"]
        csv = folder / "out" / "faces.csv"
        assert "kept: you chose to keep it" in csv.read_text()  # the library's report agrees
        assert client.post(f"/api/faces/{face['id']}", json={"exclude": False}).status_code == 202
        again = _finished(client)["results"]["photos"][0]
        assert again["restored"] and again["faces"][0]["status"] == "restored"
        assert len(list((folder / "run").iterdir())) == len(pictures)  # no more disk
        assert client.get(f"/api/files/{face['before']}").status_code == 404  # stale ids
        assert client.get(f"/api/files/{again['faces'][0]['before']}").status_code == 200
        assert client.post(f"/api/faces/{face['id']}", json={"guide": 3}).status_code == 400


def test_only_loopback_addresses_count_as_local():
    from gfrnet_tf.web.serve import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.20", "example.org"]))


def _command(bin_dir, *args, **kwargs):
    return subprocess.Popen(
        [str(bin_dir / "gfrnet-web"), *map(str, args)],
        env=installed_env(TF_CPP_MIN_LOG_LEVEL="2"),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


@pytest.mark.slow
def test_the_installed_command_serves_the_page_from_the_wheel(
    installed_wheel, tiny_model, tmp_path
):
    bin_dir, wheel = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    for asset in ("index.html", "page.js", "page.css"):
        assert f"gfrnet_tf/web/static/{asset}" in names
    helped = _command(bin_dir, "--help", cwd=tmp_path).communicate(timeout=300)[0]
    for flag in ("--model", "--port", "--host", "--max_megapixels", "--workers"):
        assert flag in helped, helped
    missing = _command(bin_dir, "--model", tmp_path / "none.keras", cwd=tmp_path)
    _, errors = missing.communicate(timeout=300)
    assert missing.returncode == 1 and errors.strip().splitlines()[-1].startswith(
        f"error: {tmp_path / 'none.keras'}: "
    )
    server = _command(
        bin_dir, "--model", tiny_model[1], "--image_size", SIZE, "--port", 0, cwd=tmp_path
    )
    try:
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", server.stdout.readline()).group(1)
        assert "Restore faces in your photos" in httpx.get(url).text
        assert httpx.get(f"{url}/static/page.js").status_code == 200
        busy = _command(bin_dir, "--model", tiny_model[1], "--port", url.rsplit(":", 1)[1])
        _, errors = busy.communicate(timeout=300)
        assert busy.returncode == 1 and "cannot listen here" in errors.strip().splitlines()[-1]
    finally:
        server.terminate()
        server.wait(60)
    assert sorted(os.listdir(tmp_path)) == []  # nothing written where it was run


def test_a_clip_comes_back_as_a_clip(studio, tmp_path):
    pytest.importorskip("av")
    from gfrnet_tf.sample import load_sample
    from gfrnet_tf.video.reader import VideoReader
    from gfrnet_tf.video.synthetic import frames, write_clip

    if studio.clips is None:
        pytest.skip("the library's clip stages are not installed")
    clip = tmp_path / "holiday.mp4"
    write_clip(clip, (f.image for f in frames(12)))
    guide = io.BytesIO()
    Image.fromarray(load_sample()[0]).save(guide, format="PNG")
    with TestClient(make_app(studio), base_url=LOCAL) as client:
        assert (
            _upload(client, "holiday.mp4", clip.read_bytes()).json()["added"][0]["kind"] == "clip"
        )
        _upload(client, "eileen.png", guide.getvalue(), person="Eileen")
        client.post("/api/restore", json={"restore_all": True})
        (item,) = _finished(client)["results"]["photos"]
        assert item["kind"] == "clip" and item["restored_name"] == "holiday_restored.mp4", item
        (track,) = item["faces"]
        assert track["person"] == "Eileen" and track["status"] == "restored"
        first, last = map(int, track["frames"].split("-"))
        assert first <= track["shown_frame"] <= last  # the track's sharpest frame
        answer = client.get(f"/api/files/{item['restored']}?download=1")
        assert answer.headers["content-type"] == "video/mp4"
        assert 'filename="holiday_restored.mp4"' in answer.headers["content-disposition"]
        restored = tmp_path / "restored.mp4"
        restored.write_bytes(answer.content)
        with VideoReader(restored) as reader:
            assert (reader.info.width, reader.info.height) == (160, 128)
            shown = [f.image for f in reader.frames()]
            assert len(shown) == 12
        with VideoReader(clip) as reader:
            source = next(f.image for f in reader.frames() if f.index == track["shown_frame"])
        # The track before and after, as a photo's face: the same crop of both clips' frame.
        before, after = (
            np.asarray(Image.open(io.BytesIO(client.get(f"/api/files/{track[side]}").content)))
            for side in ("before", "after")
        )
        assert before.shape == after.shape and max(before.shape[:2]) == FACE_PX
        (face,) = detect_faces(before)  # the track's face, in the middle of its crop
        x, y, w, h = face.box
        assert abs(x + w / 2 - before.shape[1] / 2) < 0.15 * FACE_PX
        assert abs(y + h / 2 - before.shape[0] / 2) < 0.15 * FACE_PX
        changed = np.abs(after.astype(int) - before).mean()
        whole = np.abs(shown[track["shown_frame"]].astype(int) - source).mean()
        assert whole > 10 and changed > 10, (changed, whole)  # the restored face is shown
        # Kept as it was: restored again, the pictures replaced (the old ids are stale).
        client.post(f"/api/faces/{track['id']}", json={"exclude": True})
        (kept,) = _finished(client)["results"]["photos"][0]["faces"]
        assert kept["excluded"] and kept["after"] is None
        assert client.get(f"/api/files/{kept['before']}").status_code == 200
        for stale in (track["before"], track["after"]):
            assert client.get(f"/api/files/{stale}").status_code == 404
