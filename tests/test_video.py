"""Video restoration: decoding/encoding with audio, tracking, smoothing, streaming, measures.

Clips are made from the bundled face (`gfrnet_tf.video.synthetic`): its true motion per frame is
known, so tracking error and motion-compensated flicker are measured, not guessed.
"""

import math
import sys
from fractions import Fraction

import av
import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data.images import to_model_range
from gfrnet_tf.errors import BadVideoError
from gfrnet_tf.faces import crop_face
from gfrnet_tf.io.media import is_video_file
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.sample import load_sample
from gfrnet_tf.video import subpixel
from gfrnet_tf.video import synthetic as clips
from gfrnet_tf.video.measures import Flicker, RunningStats, face_crop
from gfrnet_tf.video.reader import VideoReader
from gfrnet_tf.video.smoothing import TrackSmoother, centred_line_fit
from gfrnet_tf.video.tracking import FaceTracker, TrackedFace
from gfrnet_tf.video.writer import VideoWriter
from support import TINY, run_checkout, run_module

# --- smoothing -------------------------------------------------------------------------


def test_centred_line_fit_matches_numpy_polyfit_and_keeps_a_line():
    rng = np.random.default_rng(0)
    offsets = np.arange(-3, 5, dtype=np.float64)
    values = rng.normal(size=(8, 3))
    weights = 1 - np.abs(offsets) / 5
    fitted = centred_line_fit(offsets, values, radius=4)
    for column in range(3):
        # polyfit weights multiply residuals, so they are the square roots of the LSQ weights.
        slope, intercept = np.polyfit(offsets, values[:, column], 1, w=np.sqrt(weights))
        assert fitted[column] == pytest.approx(intercept, abs=1e-9)
    # A steady motion passes unchanged, also from a one-sided window (a track's start).
    line = 5.0 + 2.5 * offsets[3:, None]
    assert centred_line_fit(offsets[3:], line, radius=4)[0] == pytest.approx(5.0)
    assert centred_line_fit(np.zeros(1), np.ones((1, 2)), radius=4) == pytest.approx([1, 1])


def _face(track, x, y=10.0):
    return TrackedFace(track, (x, y, 20.0, 20.0), np.full((5, 2), x))


def test_smoother_delays_by_its_radius_keeps_order_and_smooths_each_track():
    rng = np.random.default_rng(1)
    smoother = TrackSmoother(radius=3)
    truth = 2.0 * np.arange(30)
    noisy = truth + rng.normal(0, 1.0, 30)
    out = []
    for t in range(30):
        faces = [_face(0, noisy[t])] + ([_face(1, 100.0)] if 10 <= t < 14 else [])
        ready = smoother.push(t, faces)
        assert [item for item, _ in ready] == ([t - 3] if t >= 3 else [])
        out += ready
    out += smoother.flush()
    assert [item for item, _ in out] == list(range(30))
    smoothed = np.array([next(f.box[0] for f in faces if f.track == 0) for _, faces in out])
    assert np.abs(smoothed - truth).mean() < 0.7 * np.abs(noisy - truth).mean()
    np.testing.assert_allclose(
        [f.keypoints[0, 0] for _, fs in out for f in fs if f.track == 0], smoothed
    )  # landmarks smoothed the same way
    assert [item for item, faces in out if any(f.track == 1 for f in faces)] == [10, 11, 12, 13]
    assert TrackSmoother(0).push("a", [_face(0, 1.5)])[0][1][0].box[0] == 1.5


# --- tracking --------------------------------------------------------------------------


def test_tracker_follows_the_true_motion_between_detections():
    frames = [clips.degraded_frame(t) for t in range(40)]
    tracker = FaceTracker(detect_every=10)
    per_frame = FaceTracker(detect_every=1)
    followed, detected = [], []
    for t, image in enumerate(frames):
        (face,) = tracker.update(image)
        followed.append(face)
        detected.append(per_frame.update(image)[0])
    assert tracker.detections == 4 and per_frame.detections == 40
    assert {face.track for face in followed} == {0}
    assert followed[0].detection is not None and all(f.detection is None for f in followed[1:])

    def centres(faces):
        return np.array([[x + w / 2, y + h / 2] for x, y, w, h in (f.box for f in faces)])

    truth = centres([TrackedFace(0, clips.face_box(t), None) for t in range(40)])
    # MTCNN's box is not the sample's face region: compare motion, not position.
    for faces in (followed, detected):
        offset = (centres(faces) - truth).mean(axis=0)
        assert np.abs(centres(faces) - truth - offset).max() < 2.5

    # Jitter: frame-to-frame change of the box beyond the true motion.
    def jitter(faces):
        return np.abs(np.diff(centres(faces) - truth, axis=0)).mean()

    assert jitter(followed) < 0.6 * jitter(detected)


def test_tracks_end_when_the_face_leaves_and_a_new_one_starts_on_return():
    face = clips.degraded_frame(0)
    blank = np.full_like(face, 128)
    tracker = FaceTracker(detect_every=5)
    images = [face] * 3 + [blank] * 3 + [face] * 4
    tracks = [[f.track for f in tracker.update(image)] for image in images]
    assert tracks[:3] == [[0]] * 3
    # Flow finds nothing to follow on a flat frame: lost at frame 3, where a detection
    # (finding nothing) is made at once; without tracks the next is due 5 frames later.
    assert tracks[3:8] == [[]] * 5 and tracker.detections == 3
    assert tracks[8:] == [[1], [1]]  # a new id, so its guide is chosen afresh


# --- reading and writing ---------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    clips.write_clip(path, (clips.degraded_frame(t) for t in range(30)))
    return path


def _streams(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = [(s.codec_context.name, s.sample_rate) for s in container.streams.audio]
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        return video.average_rate, video.time_base, audio, frames


def _audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.dts is not None]


def test_lossless_round_trip_keeps_frames_timestamps_and_audio_bytes(clip_file, tmp_path):
    out = tmp_path / "copy.mp4"
    with VideoReader(clip_file) as reader:
        assert (reader.info.width, reader.info.height, reader.info.declared_frames) == (
            160,
            128,
            30,
        )
        with VideoWriter(out, reader.info, crf=0) as writer:
            for frame in reader.frames(writer.copy_audio):
                writer.write(frame.image, frame.pts)
    rate, time_base, audio, frames = _streams(clip_file)
    rate2, time_base2, audio2, frames2 = _streams(out)
    assert (rate2, time_base2, audio2) == (rate, time_base, audio) and audio == [("aac", 16000)]
    assert [pts for pts, _ in frames2] == [pts for pts, _ in frames]
    for (_, a), (_, b) in zip(frames, frames2):
        np.testing.assert_array_equal(a, b)  # crf 0: libx264rgb, exact
    assert _audio_packets(out) == _audio_packets(clip_file)  # copied, not re-encoded


def test_odd_frame_sizes_and_variable_rates_are_kept(tmp_path):
    source, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    pts = [0, 40, 80, 160, 200, 320, 360]  # ms: some frames last twice or thrice as long
    images = [cv2.resize(clips.degraded_frame(t), (75, 61)) for t in range(len(pts))]
    clips.write_clip(
        source, iter(images), 75, 61, audio=False, pts=pts, time_base=Fraction(1, 1000)
    )
    with VideoReader(source) as reader, VideoWriter(out, reader.info) as writer:
        for frame in reader.frames():
            writer.write(frame.image, frame.pts)
    _, time_base, audio, frames = _streams(out)
    assert audio == [] and frames[0][1].shape == (61, 75, 3)
    assert [float(p * time_base) for p, _ in frames] == pytest.approx([p / 1000 for p in pts])


def _truncated(data):
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("empty.mp4", b"", "empty file"),
        ("noise.mp4", bytes(range(256)) * 8, "cannot read as a video"),
        ("half.mp4", _truncated, "cannot read as a video"),
    ],
)
def test_unreadable_videos_are_named(clip_file, tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content(clip_file.read_bytes()) if callable(content) else content)
    with pytest.raises(BadVideoError, match=problem) as raised:
        with VideoReader(path) as reader:
            list(reader.frames())
    assert raised.value.source == str(path) and "\n" not in raised.value.problem


def test_truncation_is_found_by_frame_count_and_by_duration(clip_file, tmp_path):
    for suffix, options in ((".mp4", {"movflags": "faststart"}), (".mkv", {})):
        whole = tmp_path / f"whole{suffix}"
        with av.open(str(clip_file)) as source, av.open(str(whole), "w", options=options) as target:
            streams = {s.index: target.add_stream_from_template(s) for s in source.streams}
            for packet in source.demux():
                if packet.dts is not None:
                    packet.stream = streams[packet.stream.index]
                    target.mux(packet)
        with VideoReader(whole) as reader:
            assert len(list(reader.frames())) == 30
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
        with pytest.raises(BadVideoError, match="truncated"), VideoReader(cut) as reader:
            list(reader.frames())


def test_videos_are_told_from_photos_by_name_or_content(clip_file, tmp_path):
    renamed = tmp_path / "clip.jpg"
    renamed.write_bytes(clip_file.read_bytes())
    heic = tmp_path / "photo.bin"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(20))
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    assert is_video_file(clip_file) and is_video_file(renamed) and is_video_file("x.MKV")
    assert not is_video_file(heic) and not is_video_file(photo)
    assert not is_video_file(tmp_path / "absent.png")


# --- measures --------------------------------------------------------------------------


def test_face_crop_undoes_the_known_motion():
    region = clips.FACE_REGION
    clean = [face_crop(clips.clean_frame(t), clips.photo_to_frame(t), region, 48) for t in (0, 17)]
    reference = cv2.resize(
        load_sample()[0][region[1] : region[3], region[0] : region[2]],
        (48, 48),
        interpolation=cv2.INTER_AREA,
    )
    for crop in clean:  # the face drawn at scale ~0.43, sampled back: blurred, but in place
        assert np.abs(crop.astype(float) - reference).mean() < 12
    # Motion compensation is what makes the flicker small: without it, the crops differ more.
    still = face_crop(clips.clean_frame(17), clips.photo_to_frame(0), region, 48)
    assert (
        np.abs(still.astype(float) - clean[0]).mean()
        > 3 * np.abs(clean[1].astype(float) - clean[0]).mean()
    )


def test_flicker_and_running_stats_match_numpy():
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    flicker = Flicker()
    for t, crop in enumerate(crops):
        flicker.add({0: crop} if t != 3 else {})  # frame 3 has no face: no pair across it
    pairs = [(0, 1), (1, 2), (4, 5)]
    assert flicker.value == pytest.approx(
        np.mean([np.abs(crops[a].astype(float) - crops[b]).mean() for a, b in pairs])
    )
    values = rng.normal(3, 2, 50)
    stats = RunningStats()
    for v in values:
        stats.add(v)
    assert (stats.mean, stats.std) == pytest.approx((values.mean(), values.std()))
    assert (stats.minimum, stats.maximum) == (values.min(), values.max())
    assert math.isnan(Flicker().value)


# --- sub-pixel crops -------------------------------------------------------------------


def test_subpixel_crop_matches_slices_and_resize_and_pastes_back_in_place():
    image = clips.clean_frame(0)
    whole = subpixel.Window(20.0, 10.0, 48.0, 48)  # whole pixels, no scaling: a slice
    np.testing.assert_array_equal(subpixel.crop(image, whole), image[10:58, 20:68])
    half = subpixel.Window(20.0, 10.0, 96.0, 48)  # 2x smaller: as INTER_AREA, up to the filter
    area = cv2.resize(image[10:106, 20:116], (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(subpixel.crop(image, half).astype(float) - area).mean() < 2.0
    shifted = subpixel.Window(20.5, 10.0, 48.0, 48)  # half a pixel: the mean of two columns
    expected = (image[10:58, 20:68].astype(float) + image[10:58, 21:69]) / 2
    assert np.abs(subpixel.crop(image, shifted) - expected).max() <= 1
    outside = subpixel.crop(image, subpixel.Window(-30.0, 100.0, 48.0, 48))
    assert not outside[:, :20].any() and not outside[-10:].any()  # black beyond the frame

    window = subpixel.window_around((40.3, 30.7, 50.0, 54.0), 0.25, 32)
    assert window.side == pytest.approx(54 * 1.5)
    pasted = subpixel.paste(image, subpixel.crop(image, window), window)
    x0, y0, x1, y1 = window.bounds(image.shape[1], image.shape[0], pad=1)
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(pasted[outside], image[outside])
    inner = (
        slice(int(y0 + 0.2 * window.side), int(y1 - 0.2 * window.side)),
        slice(int(x0 + 0.2 * window.side), int(x1 - 0.2 * window.side)),
    )
    # A 2.5x down- and up-sampled copy of the same pixels, pasted where they came from.
    assert np.abs(pasted[inner].astype(float) - image[inner]).mean() < 6
    flat = subpixel.paste(image, np.zeros((32, 32, 3), np.uint8), window)
    assert (flat[inner] == 0).all()  # inside the feather the restored face replaces the frame


# --- streaming restoration -------------------------------------------------------------

SIZE = 32


def trained_tiny_model(size: int = 32, frames: int = 30, epochs: int = 2):
    """A tiny GFRNet fitted (L2 only, 100 steps) to restore this clip's face crops.

    Restoring flicker is about how a network reacts to what it sees, which an untrained
    network (an almost constant output) does not show; this one behaves like a restorer.
    """
    pairs = [
        (
            crop_face(clips.degraded_frame(t), clips.face_box(t), size=size)[0],
            crop_face(clips.clean_frame(t), clips.face_box(t), size=size)[0],
        )
        for t in range(0, 2 * frames, 2)
    ]
    guide = crop_face(load_sample()[0], (64, 64, 128, 128), size=size)[0]
    landmarks = np.full((len(pairs), 68, 2), size / 2, np.float32)  # unused: no landmark loss
    inputs = {
        "degraded": to_model_range(np.stack([d for d, _ in pairs])),
        "guide": to_model_range(np.repeat(guide[None], len(pairs), axis=0)),
    }
    targets = {
        "target": to_model_range(np.stack([c for _, c in pairs])),
        "landmarks": landmarks,
        "guide_landmarks": landmarks,
    }
    model = build_gfrnet(
        {**TINY, "loss_weights": {"adv_global": 0.0, "adv_local": 0.0, "landmark": 0.0, "tv": 0.0}}
    )
    model.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.build_all((size, size))
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).shuffle(len(pairs), seed=0)
    model.fit(data.repeat().batch(8), epochs=epochs, steps_per_epoch=50, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny GFRNet fitted to this clip's faces, as a `.keras` file and a `PhotoRestorer`."""
    from gfrnet_tf.restoration.photos import PhotoRestorer
    from gfrnet_tf.restoration.restorer import load_restorer

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model = trained_tiny_model(SIZE)
    model.save(path)
    photos = PhotoRestorer(load_restorer(path), SIZE)
    photos.add_guide(load_sample()[0], "sample", pose=False)
    return model, path, photos


def _restored(photos, frames, **settings):
    from gfrnet_tf.video.streaming import VideoRestorer

    videos = VideoRestorer(photos, **settings)
    return list(videos.restore_frames(frames)), videos


def _flicker(images):
    flicker = Flicker()
    for t, image in enumerate(images):
        flicker.add({0: face_crop(image, clips.photo_to_frame(t), clips.FACE_REGION, 48)})
    return flicker.value


def test_tracking_restores_with_less_flicker_than_per_frame_restoration(trained):
    _, _, photos = trained
    frames = list(clips.frames(40))
    tracked, videos = _restored(photos, frames, detect_every=10)
    per_frame, baseline = _restored(photos, frames, detect_every=1, smoothing_radius=0)
    assert videos.detections == 4 and baseline.detections == 40
    assert [r.frame.index for r in tracked] == list(range(40))
    assert {face.track for r in tracked for face in r.faces} == {0}
    flicker = {
        name: _flicker([r.image for r in result])
        for name, result in (("tracked", tracked), ("per frame", per_frame))
    }
    flicker["input"] = _flicker([f.image for f in frames])
    assert flicker["tracked"] < 0.7 * flicker["per frame"], flicker  # the goal: >= 30 %
    for result in tracked:  # nothing outside the crop windows changed
        changed = np.any(result.image != result.frame.image, axis=-1)
        inside = np.zeros_like(changed)
        for face in result.faces:
            x0, y0, x1, y1 = face.window.bounds(changed.shape[1], changed.shape[0], pad=1)
            inside[y0:y1, x0:x1] = True
        assert changed.any() and not (changed & ~inside).any()


def test_frames_without_a_face_pass_through_unchanged(trained):
    _, _, photos = trained
    frames = list(clips.frames(12))
    blank = np.full_like(frames[0].image, 90)
    frames[4:8] = [type(f)(f.index, blank, f.pts) for f in frames[4:8]]
    result, _ = _restored(photos, frames, detect_every=2)
    for r in result[4:8]:
        assert r.faces == [] and r.image is r.frame.image
    assert all(r.faces for r in result[:4] + result[8:])  # lost at 4, found at 8


@pytest.mark.slow
def test_a_fixed_size_batch_one_backend_restores_a_clip_alike(trained, tmp_path):
    """TFLite (size fixed at export, one image per call) against the Keras model; that
    the backends agree on single images is `test_restore`'s."""
    from gfrnet_tf.export.tflite import convert_to_tflite
    from gfrnet_tf.restoration.photos import PhotoRestorer
    from gfrnet_tf.restoration.restorer import load_restorer

    model, keras_path, _ = trained
    lite = tmp_path / "tiny.tflite"
    lite.write_bytes(convert_to_tflite(model, SIZE, "fp32"))
    frames = list(clips.frames(6))
    results = {}
    for name, path in (("keras", keras_path), ("tflite", lite)):
        restorer = load_restorer(path)
        photos = PhotoRestorer(restorer, restorer.image_size or SIZE)
        photos.add_guide(load_sample()[0], "sample", pose=False)
        results[name] = [r.image.astype(int) for r in _restored(photos, frames, batch_size=4)[0]]
    assert load_restorer(lite).image_size == SIZE
    for a, b in zip(results["keras"], results["tflite"]):
        assert np.abs(a - b).max() <= 2


# --- gfrnet-restore on a folder of videos and photos -----------------------------------


def test_restore_command_on_a_folder_of_videos_and_a_photo(trained, clip_file, tmp_path):
    """Each video restored with its frames, timing and audio, each bad one refused in one
    line by name with no output left behind, and the photo restored as before. Lossless
    video (`--video_crf=0`) shows that no pixel away from the face changed."""
    _, model_path, _ = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    wide = 320  # room beside the face's crop window, where nothing may change
    clips.write_clip(inputs / "clip.mp4", (clips.degraded_frame(t, wide) for t in range(30)), wide)
    vfr_pts = [0, 40, 80, 160, 200, 320, 360, 400]
    clips.write_clip(
        inputs / "vfr.mov",
        (clips.degraded_frame(t) for t in range(8)),
        audio=False,
        pts=vfr_pts,
        time_base=Fraction(1, 1000),
    )
    clips.write_clip(
        inputs / "noface.mp4", (np.full((128, 160, 3), 90, np.uint8) for _ in range(12))
    )
    (inputs / "broken.mp4").write_bytes(clip_file.read_bytes()[:5000])
    cv2.imwrite(str(inputs / "photo.png"), cv2.cvtColor(clips.clean_frame(5), cv2.COLOR_RGB2BGR))
    guide = tmp_path / "guide.png"
    cv2.imwrite(str(guide), cv2.cvtColor(load_sample()[0], cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    done = run_module(
        "gfrnet_tf.apps.restore",
        f"--model={model_path}",
        f"--input={inputs}",
        f"--guide={guide}",
        f"--output={out}",
        f"--image_size={SIZE}",
        "--video_crf=0",
        "--any_person",  # the small clip faces are not matched by identity here
        "--restore_all",
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = sorted(line for line in done.stderr.splitlines() if line.startswith("error:"))
    assert errors == [
        f"error: {inputs / 'broken.mp4'}: cannot read as a video (Invalid data found "
        "when processing input)",
    ], errors
    assert "failed: bad_file 1" in done.stderr
    assert "noface.mp4: skipped: no face found (MTCNN, confidence >= 0.9)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "clip_restored.mp4",
        "faces.csv",
        "people",
        "people.json",
        "photo_face0.png",
        "photo_face0_compare.png",
        "photo_restored.png",
        "vfr_restored.mp4",
    ]
    summary = next(
        line for line in done.stdout.splitlines() if line.startswith(str(inputs / "clip.mp4"))
    )
    assert "restored 30 frames (25 fps, 1 audio stream(s) copied)" in summary
    assert "1 track(s), 3 detections" in summary and "identity distance to guide" in summary
    assert "tracks: 0 guide" in summary  # the person of each track, named after the guide
    assert any(
        "vfr.mov" in line and "variable rate kept" in line for line in done.stdout.splitlines()
    )

    rate, time_base, audio, frames = _streams(inputs / "clip.mp4")
    rate2, time_base2, audio2, restored = _streams(out / "clip_restored.mp4")
    assert (rate2, time_base2, audio2) == (rate, time_base, audio)
    assert [pts for pts, _ in restored] == [pts for pts, _ in frames]
    assert _audio_packets(out / "clip_restored.mp4") == _audio_packets(inputs / "clip.mp4")
    for t, ((_, before), (_, after)) in enumerate(zip(frames, restored)):
        x, y, w, h = clips.face_box(t, wide)
        away = np.ones(before.shape[:2], bool)  # the crop window is ~1.5 MTCNN boxes wide
        away[:, max(int(x - w), 0) : int(x + 2 * w)] = False
        difference = np.abs(after.astype(int) - before)
        assert not difference[away].any()  # crf 0: lossless, so exactly the source's pixels
        assert (
            difference[
                int(y + 0.3 * h) : int(y + 0.7 * h), int(x + 0.3 * w) : int(x + 0.7 * w)
            ].mean()
            > 2
        )
    _, vfr_base, _, vfr_frames = _streams(out / "vfr_restored.mp4")
    assert [round(float(p * vfr_base) * 1000) for p, _ in vfr_frames] == vfr_pts


# --- memory ----------------------------------------------------------------------------

_PEAK_RSS_OF_A_RESTORE = """
import sys
from gfrnet_tf.restoration.photos import PhotoRestorer
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.sample import load_sample
from gfrnet_tf.video.clip import restore_clip
from gfrnet_tf.video.streaming import VideoRestorer

photos = PhotoRestorer(load_restorer(sys.argv[1]), 32)
photos.add_guide(load_sample()[0], "sample", pose=False)
report = restore_clip(VideoRestorer(photos), sys.argv[2], sys.argv[3], progress=False)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(report.frames, report.frames_with_faces, int(status["VmHWM"].split()[0]))
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_clip_length(trained, tmp_path):
    """Peak RSS restoring 100 and 1000 frames: holding the extra 900 decoded frames alone
    would add 55 MB (160x128 RGB), their restored copies as much again."""
    _, model_path, _ = trained
    cycle = [clips.degraded_frame(t) for t in range(50)]
    peaks = {}
    for count in (100, 1000):
        source = tmp_path / f"clip{count}.mp4"
        clips.write_clip(source, (cycle[t % 50] for t in range(count)))
        done = run_checkout(
            sys.executable,
            "-c",
            _PEAK_RSS_OF_A_RESTORE,
            model_path,
            source,
            tmp_path / f"out{count}.mp4",
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        frames, with_faces, peak_kb = map(int, done.stdout.split()[-3:])
        assert frames == with_faces == count
        peaks[count] = peak_kb / 1024
    print(f"peak RSS: {peaks[100]:.0f} MB at 100 frames, {peaks[1000]:.0f} MB at 1000")
    assert peaks[1000] - peaks[100] < 20, peaks
