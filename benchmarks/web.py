"""The page (`gfrnet-web`): time to the first restored face, and memory with 5 visitors.

Runs the real command (`python -m gfrnet_tf.apps.web`, port 0) on 127.0.0.1 with a GFRNet
of the paper's pix2pix widths at 256 px (random weights: speed does not depend on them),
and drives it over HTTP as the page does (upload, restore, poll `/api/state`):

- one 640x480 photo (the bundled astronaut photo, degraded: blur, 3x down and up, JPEG)
  with a guide of the same person: seconds from the first byte of the upload to the first
  face shown restored, for the first visitor after start (cold: the face models load and
  the network is traced) and for a second one (warm). Baseline in the same run: the
  library's own `restore_library` on the same files in this process, warm.
- 5 visitors at once, each with the same photo and guide: every one finishes; the
  server's peak resident memory (`VmHWM`) before and after, and the slowest `/api/state`
  answer while they worked (the event loop is never blocked by the model).

Bounded: 5 visitors, each polling at most every 0.2 s, all on 127.0.0.1; the server is
stopped at the end.

    python -m benchmarks.web [--visitors 5] [--image_size 256]

`--screenshot PNG --model M` instead takes the README's picture of the page: Debian's
Chromium (Playwright) adds the same photo and the bundled face as the guide of "Eileen
Collins", restores with the trained model M (e.g. `runs/demo/train`) and keeps the page.

Note `uptime` beside any figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import httpx
import numpy as np
from PIL import Image
from skimage.data import astronaut

WIDTH, HEIGHT = 640, 480
POLL_SECONDS = 0.2
CHROMIUM = "/usr/bin/chromium"
# Chromium as root on a machine without internet: no sandbox, no background requests.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(playwright):
    """Headless Debian Chromium through Playwright; each launch has a new, empty profile."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS))


def degraded_photo() -> bytes:
    """The astronaut photo on a 640x480 canvas, blurred, 3x down and up, JPEG 40."""
    canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    photo = cv2.resize(astronaut(), (HEIGHT, HEIGHT), interpolation=cv2.INTER_AREA)
    canvas[:, (WIDTH - HEIGHT) // 2 : (WIDTH + HEIGHT) // 2] = photo
    blurred = cv2.GaussianBlur(canvas, (0, 0), 1.5)
    small = cv2.resize(blurred, (WIDTH // 3, HEIGHT // 3), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return _jpeg(up, 40)


def guide_photo() -> bytes:
    return _jpeg(astronaut(), 95)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_memory_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def current_memory_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


class Visitor:
    """One browser's worth of requests, with its own cookie."""

    def __init__(self, url: str):
        self.client = httpx.Client(base_url=url, timeout=600)
        self.slowest_state = 0.0

    def restore(self, photo: bytes, guide: bytes) -> float:
        """Seconds from the upload's start to the first face shown restored."""
        started = time.perf_counter()
        self._upload("photo.jpg", photo)
        self._upload("guide.jpg", guide, person="Astronaut")
        answer = self.client.post("/api/restore", json={"restore_all": True})
        answer.raise_for_status()
        while True:
            asked = time.perf_counter()
            state = self.client.get("/api/state").json()
            self.slowest_state = max(self.slowest_state, time.perf_counter() - asked)
            results = state["results"]
            faces = [f for p in (results or {}).get("photos", []) for f in p["faces"]]
            if any(f["status"] == "restored" for f in faces):
                return time.perf_counter() - started
            if state["progress"]["state"] in ("done", "failed"):
                raise RuntimeError(f"no face restored: {state['progress']}")
            time.sleep(POLL_SECONDS)

    def _upload(self, name, data, person=None):
        answer = self.client.post(
            "/api/upload", files={"file": (name, data)}, data={"person": person} if person else None
        )
        answer.raise_for_status()
        if answer.json()["refused"]:
            raise RuntimeError(answer.json()["refused"])


def library_baseline(
    model: Path, image_size: int, photo: bytes, guide: bytes, batch_size: int
) -> float:
    """Seconds for `restore_library` on the same photo and guide, warm (second run)."""
    from gfrnet_tf.restoration import library
    from gfrnet_tf.restoration.outputs import OutputFolder
    from gfrnet_tf.restoration.restorer import load_restorer

    restorer = load_restorer(model)
    analyser = library.FaceAnalyser()
    settings = library.RestoreSettings(image_size, batch_size=batch_size, keep_sharper=False)
    options = library.default_options(restore_all=True)
    times = []
    with tempfile.TemporaryDirectory() as work:
        root, guides = Path(work, "photos"), Path(work, "guides", "Astronaut")
        root.mkdir()
        guides.mkdir(parents=True)
        (root / "photo.jpg").write_bytes(photo)
        (guides / "guide.jpg").write_bytes(guide)
        for run in range(2):
            started = time.perf_counter()
            named = library.named_people(analyser, guides_dir=guides.parent)
            output = OutputFolder(Path(work, f"out{run}"), root)
            summary = library.restore_library(
                root,
                output,
                restorer,
                analyser,
                settings,
                options,
                named,
                progress=False,
                say=lambda line: None,
            )
            times.append(time.perf_counter() - started)
            assert summary.restored == 1, summary.describe()
    return times[-1]


def screenshot(model: str, target: Path) -> None:
    """The README's picture: the page after restoring the photo with `model`."""
    from playwright.sync_api import sync_playwright

    from gfrnet_tf.sample import load_sample
    from gfrnet_tf.web import load_studio, make_app
    from gfrnet_tf.web.serve import running

    with (
        running(make_app(load_studio(model))) as url,
        tempfile.TemporaryDirectory() as work,
        sync_playwright() as playwright,
    ):
        photo, guide = Path(work, "family_1985.jpg"), Path(work, "eileen.png")
        photo.write_bytes(degraded_photo())
        Image.fromarray(load_sample()[0]).save(guide)
        browser = chromium(playwright)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.set_input_files("#photo-files", str(photo))
        page.wait_for_selector("#uploads li img")
        page.fill("#person-name", "Eileen Collins")
        page.set_input_files("#guide-files", str(guide))
        page.wait_for_selector("#people li img")
        page.click("#restore")
        page.wait_for_selector(".face .compare img.after", timeout=600_000)
        page.wait_for_function("() => document.getElementById('progress').hidden")
        page.locator("#results-step").screenshot(path=str(target))
        browser.close()
    print(f"wrote {target}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=5)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--screenshot", type=Path, help="take the README's picture here")
    parser.add_argument("--model", help="the trained model for --screenshot")
    args = parser.parse_args()
    if args.screenshot:
        return screenshot(args.model, args.screenshot)
    from gfrnet_tf.models.gfrnet import build_gfrnet
    from gfrnet_tf.models.layers import PIX2PIX_WIDTHS

    photo, guide = degraded_photo(), guide_photo()
    with tempfile.TemporaryDirectory() as work:
        model_path = Path(work, "pix2pix.keras")
        size = args.image_size
        model = build_gfrnet({"widths": PIX2PIX_WIDTHS})
        model({"degraded": np.zeros((1, size, size, 3)), "guide": np.zeros((1, size, size, 3))})
        model.save(model_path)
        del model
        print(
            f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"
        )
        baseline = library_baseline(model_path, size, photo, guide, batch_size=1)
        eight = library_baseline(model_path, size, photo, guide, batch_size=8)
        print(
            f"library (restore_library in process, warm): {baseline:.2f} s at batch 1 (the "
            f"page's), {eight:.2f} s at batch 8 (gfrnet-restore's default)"
        )

        command = [
            sys.executable,
            "-m",
            "gfrnet_tf.apps.web",
            "--model",
            str(model_path),
            "--port",
            "0",
            "--image_size",
            str(size),
        ]
        server = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            line = server.stdout.readline()
            url = re.search(r"(http://127\.0\.0\.1:\d+)/", line).group(1)
            started_mb = current_memory_mb(server.pid)
            cold = Visitor(url).restore(photo, guide)
            warm_visitor = Visitor(url)
            warm = warm_visitor.restore(photo, guide)
            print(f"page, first visitor (cold): {cold:.2f} s to the first restored face")
            print(f"page, second visitor (warm): {warm:.2f} s ({warm / baseline:.2f}x the library)")
            before_mb = peak_memory_mb(server.pid)
            visitors = [Visitor(url) for _ in range(args.visitors)]
            times = [None] * args.visitors

            def run(index):
                times[index] = visitors[index].restore(photo, guide)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(args.visitors)]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            total = time.perf_counter() - began
            after_mb = peak_memory_mb(server.pid)
            slowest = max(v.slowest_state for v in visitors)
            print(
                f"{args.visitors} visitors at once: all done in {total:.1f} s "
                f"(each {min(times):.1f}-{max(times):.1f} s); server memory: "
                f"{started_mb:.0f} MB at start, peak {before_mb:.0f} MB after one visitor, "
                f"peak {after_mb:.0f} MB with {args.visitors}; "
                f"slowest /api/state {slowest * 1000:.0f} ms"
            )
            print(f"uptime: {uptime()}")
        finally:
            server.terminate()
            server.wait(60)


if __name__ == "__main__":
    main()
