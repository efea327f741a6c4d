"""What the page takes from a browser: checked from headers, stored under server names."""

import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from gfrnet_tf.web.uploads import (
    CLIP,
    PHOTO,
    UploadBudget,
    UploadLimits,
    shown_name,
    store_upload,
)
from image_fixtures import png_header


def _saved(image, image_format) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format)
    return buffer.getvalue()


def _jpeg(size=None) -> bytes:
    image = astronaut()
    if size:
        image = np.asarray(Image.fromarray(image).resize(size))
    return _saved(image, "JPEG")


class _Numbers:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return self.n


def _store(data: bytes, name, folder, budget, **kwargs):
    return store_upload(io.BytesIO(data), name, folder, _Numbers(), budget, **kwargs)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_photo_is_stored_under_a_server_name_whatever_the_browser_calls_it(tmp_path):
    budget = UploadBudget(UploadLimits())
    hostile = "../../etc/passwd\x00<img src=x onerror=alert(1)>.png"
    (added,), refused = _store(_jpeg(), shown_name(hostile), tmp_path, budget)
    assert not refused
    assert added.kind == PHOTO and added.size == (512, 512)
    assert added.path == tmp_path / "photo-0001.jpg"  # the suffix from the header, not the name
    assert _files(tmp_path) == ["photo-0001.jpg"]
    assert added.name == "passwd<img src=x onerror=alert(1)>.png"  # shown as text only
    np.testing.assert_array_equal(
        np.asarray(Image.open(added.path)), np.asarray(Image.open(io.BytesIO(_jpeg())))
    )
    assert (budget.files, budget.bytes) == (1, len(_jpeg()))


def test_shown_names():
    assert shown_name("C:\\Users\\me\\Oma 1950.jpg") == "Oma 1950.jpg"
    assert shown_name("a/b/\u202egpj.exe") == "gpj.exe"  # bidi override (category Cf) dropped
    assert shown_name("") == shown_name(None) == "unnamed"
    assert len(shown_name("x" * 500)) == 80
    assert shown_name("Großmutter 😀.JPG") == "Großmutter 😀.JPG"


@pytest.mark.parametrize(
    "data, words",
    [
        (png_header(9000, 9000), "9000x9000 is 81000000 pixels, more than the maximum"),
        (png_header(100_000, 100_000), "more than 40000000 pixels"),
        (png_header(20, 20), "too small"),
        (b"hello, this is text", "not a photo"),
        (b"", "empty file"),
        (_jpeg()[:3000], "corrupt or truncated"),
        (_saved(np.zeros((32, 32, 3), np.uint8), "GIF"), "GIF images are not taken"),
    ],
    ids=["81-megapixels", "bomb-header", "tiny", "text", "empty", "truncated", "gif"],
)
def test_bad_files_are_refused_by_name_and_leave_nothing(tmp_path, data, words):
    budget = UploadBudget(UploadLimits())
    added, (refused,) = _store(data, "grandma.jpg", tmp_path, budget)
    assert not added
    assert refused.source == "grandma.jpg" and words in refused.problem, refused.problem
    assert _files(tmp_path) == []
    assert (budget.files, budget.bytes) == (0, 0)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    """The 100000^2 PNG would be 30 GB decoded: refused before Pillow loads a pixel."""
    loads = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1))
    added, (refused,) = _store(
        png_header(100_000, 100_000), "x.png", tmp_path, UploadBudget(UploadLimits())
    )
    assert "more than 40000000 pixels" in refused.problem and not loads


def test_count_and_byte_limits(tmp_path):
    photo = _jpeg(size=(64, 64))
    limits = UploadLimits(
        max_files=2, max_file_bytes=len(photo) + 10, max_total_bytes=10 * len(photo)
    )
    budget = UploadBudget(limits)
    for name in ("a.jpg", "b.jpg"):
        assert _store(photo, name, tmp_path, budget)[0]
    added, (refused,) = _store(photo, "c.jpg", tmp_path, budget)
    assert not added and "more than 2 files" in refused.problem
    budget = UploadBudget(limits)
    added, (refused,) = _store(photo + bytes(100), "big.jpg", tmp_path / "..", budget)
    assert not added and "larger than" in refused.problem and budget.files == 0


def _zip(members: dict, **kwargs) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", **kwargs) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_gives_its_photos_and_refuses_its_bad_members_one_by_one(tmp_path):
    photo = _jpeg(size=(64, 48))
    inner = _zip({"x.jpg": photo})
    data = _zip(
        {
            "album/1950/oma.jpg": photo,
            "../../escape.jpg": photo,
            "notes.txt": b"not a photo",
            "nested.zip": inner,
            "__MACOSX/._oma.jpg": b"resource fork",
            ".hidden.jpg": photo,
            "album/": b"",
        }
    )
    added, refused = _store(data, "family.zip", tmp_path, UploadBudget(UploadLimits()))
    assert [a.name for a in added] == ["family.zip: escape.jpg", "family.zip: oma.jpg"]
    assert sorted(r.source for r in refused) == ["family.zip: nested.zip", "family.zip: notes.txt"]
    assert all(p.parent == tmp_path for p in tmp_path.rglob("*"))  # nothing escaped or nested
    assert sorted(_files(tmp_path)) == sorted(a.path.name for a in added)


def test_a_zip_bomb_member_stops_at_the_byte_limit(tmp_path):
    """200 MB of zeros compress to 200 KB: extraction stops one byte past the limit."""
    limits = UploadLimits(max_file_bytes=1 << 20)
    data = _zip({"bomb.jpg": bytes(200 << 20)}, compression=zipfile.ZIP_DEFLATED)
    assert len(data) < 1 << 20
    added, (refused,) = _store(data, "b.zip", tmp_path, UploadBudget(limits))
    assert not added and "larger than 1 MB" in refused.problem
    assert _files(tmp_path) == []


def test_a_zip_whose_directory_lies_about_a_size_is_counted_as_extracted(tmp_path):
    """The central directory says 10 bytes; the member holds 3 MB: the count decides."""
    limits = UploadLimits(max_file_bytes=1 << 20)
    data = bytearray(_zip({"lie.jpg": bytes(3 << 20)}, compression=zipfile.ZIP_DEFLATED))
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size
    added, (refused,) = _store(bytes(data), "l.zip", tmp_path, UploadBudget(limits))
    assert not added and refused.source == "l.zip: lie.jpg", refused
    assert _files(tmp_path) == []


def test_a_clip_is_taken_with_its_frame_size_and_a_long_one_refused(tmp_path):
    pytest.importorskip("av")
    from gfrnet_tf.video.synthetic import frames, write_clip

    clip = tmp_path / "source.mp4"
    write_clip(clip, (f.image for f in frames(12)), audio=False)
    folder = tmp_path / "visitor"
    folder.mkdir()
    (added,), _ = _store(clip.read_bytes(), "holiday.MOV", folder, UploadBudget(UploadLimits()))
    assert added.kind == CLIP and added.size == (160, 128) and added.path.name == "clip-0001.mp4"
    _, (refused,) = _store(
        clip.read_bytes(), "long.mp4", folder, UploadBudget(UploadLimits(max_clip_frames=10))
    )
    assert "12 frames, more than the 10" in refused.problem
    _, (refused,) = _store(
        clip.read_bytes(), "guide.mp4", folder, UploadBudget(UploadLimits()), no_clips="a guide"
    )
    assert refused.problem == "a guide"
    assert _files(folder) == ["clip-0001.mp4"]
    os.remove(clip)
