"""The page in a real browser (headless Debian Chromium driven by Playwright).

A person's path through it: add a photo and guides of the person, restore, see the face
before and after, download the restored photo, give the face another guide, keep it as
it was; and a bad upload, which is a message on the page while the page goes on working.
Every request the browser makes is recorded: none may leave 127.0.0.1. Screenshots are
kept as artefacts in `$GFRNET_TEST_ARTIFACTS` (default `test-artifacts/` in the checkout).
"""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.web import chromium
from gfrnet_tf.io import load_image
from gfrnet_tf.web.serve import running
from support import ROOT

playwright_api = pytest.importorskip("playwright.sync_api")

PEOPLE = Path(__file__).parent / "data" / "people"
SIZE = 32  # conftest's tiny model
RESULT_SECONDS = 240
ARTIFACTS = Path(os.environ.get("GFRNET_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


@pytest.fixture(scope="module")
def page_url(tiny_model):
    from gfrnet_tf.web import load_studio, make_app

    app = make_app(load_studio(tiny_model[1], SIZE))
    with running(app) as url:
        yield url


@pytest.fixture
def browser_page(page_url):
    """`(page, requests)`: a fresh browser and the URL of every request it made."""
    with playwright_api.sync_playwright() as playwright:
        browser = chromium(playwright)
        context = browser.new_context(
            viewport={"width": 1100, "height": 900}, accept_downloads=True
        )
        requests = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.goto(page_url)
        yield page, requests
        browser.close()
    outside = [url for url in requests if not url.startswith(page_url + "/")]
    assert requests and not outside, outside


def _wait_for_work(page):
    page.wait_for_function(
        "() => document.getElementById('progress').hidden", timeout=RESULT_SECONDS * 1000
    )


@pytest.mark.slow
def test_restore_a_photo_with_a_guide_download_it_and_change_the_face(browser_page, tmp_path):
    page, _ = browser_page
    assert page.title() == "Restore faces in your photos"
    page.screenshot(path=artifact("web-1-empty.png"), full_page=True)

    page.set_input_files("#photo-files", str(PEOPLE / "obama.jpg"))
    page.wait_for_selector("#uploads li img")
    page.fill("#person-name", "Barack Obama")
    page.set_input_files("#guide-files", [str(PEOPLE / "obama2.jpg"), str(PEOPLE / "obama3.jpg")])
    page.wait_for_selector("#people li:has-text('2 guide photo(s)')")
    page.check("#restore-all")  # the untrained test model is no sharper than the photo
    page.screenshot(path=artifact("web-2-added.png"), full_page=True)
    page.click("#restore")
    page.wait_for_selector("#progress-text:has-text('…')")  # the stage while it works
    page.screenshot(path=artifact("web-3-working.png"), full_page=True)
    page.wait_for_selector(".face .compare img.after", timeout=RESULT_SECONDS * 1000)
    _wait_for_work(page)
    page.screenshot(path=artifact("web-4-restored.png"), full_page=True)

    face = page.locator(".face").first
    assert "Restored" in face.inner_text()
    assert "Barack Obama: obama" in face.inner_text()  # the person and the guide used
    assert "Identity distance to the person's guide: before 0." in face.inner_text()
    whole = page.locator("img.whole").first
    assert whole.evaluate("image => image.complete && image.naturalWidth") == 200  # obama.jpg

    with page.expect_download() as download:
        page.click("a:has-text('Download obama_restored.png')")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "obama_restored.png"
    restored, original = load_image(saved), load_image(PEOPLE / "obama.jpg")
    assert restored.shape == original.shape and np.abs(restored.astype(int) - original).max() > 50

    with page.expect_download() as download:
        page.click("#download-all")
    assert download.value.suggested_filename == "restored.zip"

    used = face.locator(".guide-line span").inner_text()
    other = face.locator("select option").first.inner_text()
    assert other != used.removeprefix("Guide: ")
    face.locator("button:has-text('Use this guide')").click()
    page.wait_for_function(
        "label => document.querySelector('.face .guide-line span')?.textContent === label",
        arg=f"Guide: {other}",
        timeout=RESULT_SECONDS * 1000,
    )
    _wait_for_work(page)

    page.locator(".face button:has-text('Keep this face as it was')").click()
    page.wait_for_selector(".face:has-text('Left as it was: you chose to keep it')")
    _wait_for_work(page)
    assert page.locator("img.whole").count() == 0  # nothing restored: no photo to download
    page.screenshot(path=artifact("web-5-kept.png"), full_page=True)


@pytest.mark.slow
def test_a_bad_upload_is_a_message_and_the_page_goes_on(browser_page, tmp_path):
    page, _ = browser_page
    (tmp_path / "notes.jpg").write_text("these are my notes, not a photo")
    truncated = tmp_path / "torn.jpg"
    truncated.write_bytes((PEOPLE / "biden.jpg").read_bytes()[:2000])
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(huge)  # 48 megapixels, a small file
    page.set_input_files("#photo-files", [str(tmp_path / "notes.jpg"), str(truncated), str(huge)])
    page.wait_for_selector("#messages li:has-text('huge.png was not added')")
    messages = page.locator("#messages").inner_text()
    assert "notes.jpg was not added: not a photo" in messages
    assert "torn.jpg was not added: corrupt or truncated image data" in messages
    assert "huge.png was not added: 8000x6000 is 48000000 pixels, more than the maximum" in messages
    assert page.locator("#uploads li").count() == 0
    assert page.locator("#restore").is_disabled()
    page.screenshot(path=artifact("web-6-bad-upload.png"), full_page=True)

    page.set_input_files("#photo-files", [str(PEOPLE / "biden.jpg"), str(PEOPLE / "obama.jpg")])
    page.wait_for_selector("#uploads li:has-text('obama.jpg')")  # the server goes on
    assert page.locator("#restore").is_enabled()
    page.screenshot(path=artifact("web-7-two-added.png"), full_page=True)
    page.click("#uploads li:has-text('biden.jpg') button[aria-label='Remove biden.jpg']")
    page.wait_for_function("() => document.querySelectorAll('#uploads li').length === 1")
    assert page.locator("#uploads li span").inner_text() == "obama.jpg"
    page.click("#uploads li button.remove")
    page.wait_for_function("() => !document.querySelector('#uploads li')")
    assert page.locator("#restore").is_disabled()  # nothing left to restore
