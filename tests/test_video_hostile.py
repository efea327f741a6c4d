"""Clips a careless user or an attacker brings: turned by a display matrix, tagged, changing
size, hiding huge frames behind a small header, cut short, one frame long, or killed while
being restored. Each is restored as a player shows it, or refused in one line naming the
file while the batch goes on, and nothing half-written is left behind."""

import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from gfrnet_tf.errors import BadVideoError
from gfrnet_tf.sample import load_sample
from gfrnet_tf.video import synthetic as clips
from gfrnet_tf.video.orientation import Orientation
from gfrnet_tf.video.reader import Colour, VideoReader
from gfrnet_tf.video.writer import VideoWriter

REPO = Path(__file__).resolve().parents[1]
SIZE = 32


def _frames(path):
    with VideoReader(path) as reader:
        return reader.info, [frame.image for frame in reader.frames()]


def _copy(source, target, crf=0):
    """`source` through the reader and the writer, as `restore_clip` does."""
    with VideoReader(source) as reader, VideoWriter(target, reader.info, crf) as writer:
        for frame in reader.frames(writer.copy_audio):
            writer.write(frame.image, frame.pts)


def _first_frame(path):
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        streams = {s.type: dict(s.metadata) for s in container.streams}
        return frame, streams


@pytest.mark.parametrize("degrees", [0, 90, 180, -90])
@pytest.mark.parametrize("hflip", [False, True])
def test_every_display_matrix_turns_frames_as_a_player_shows_them(tmp_path, degrees, hflip):
    """PyAV's `set_display_rotation` documents the shown frame: turned counter-clockwise by
    `degrees`, then mirrored; the orientation read back must give exactly that, and undo it."""
    stored = np.arange(6 * 8 * 3, dtype=np.int32).reshape(6, 8, 3)
    path = tmp_path / "tagged.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.set_display_rotation(degrees, hflip=hflip)
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        container.mux(video.encode(frame))
        container.mux(video.encode(None))
    frame, _ = _first_frame(path)
    side_data = [bytes(d) for d in frame.side_data if d.type.name == "DISPLAYMATRIX"]
    orientation = Orientation.from_side_data(side_data[0] if side_data else None)
    expected = np.rot90(stored, degrees // 90)
    expected = expected[:, ::-1] if hflip else expected
    np.testing.assert_array_equal(orientation.upright(stored), expected)
    np.testing.assert_array_equal(orientation.stored(orientation.upright(stored)), stored)
    assert orientation.turns == (degrees != 0 or hflip)


def test_a_phone_clip_is_read_upright_and_written_back_with_its_rotation(tmp_path):
    upright = [clips.degraded_frame(t) for t in range(6)]
    source, out = tmp_path / "portrait.mp4", tmp_path / "out.mp4"
    clips.write_clip(source, iter(upright), display_rotation=-90)
    info, frames = _frames(source)
    assert (info.width, info.height) == (128, 160)  # stored sideways
    assert frames[0].shape == (128, 160, 3)  # shown upright, as a player shows it
    for read, original in zip(frames, upright):
        assert np.abs(read.astype(int) - original).mean() < 5  # H.264 losses only
        assert np.abs(read.astype(int) - original[::-1, ::-1]).mean() > 15  # vs upside down
    _copy(source, out)
    frame, _ = _first_frame(out)
    assert (frame.width, frame.height, frame.rotation) == (128, 160, -90)  # still tagged
    _, again = _frames(out)
    for a, b in zip(frames, again):
        np.testing.assert_array_equal(a, b)  # crf 0: the same pixels, shown the same way


def test_stream_tags_and_colour_tags_are_kept_with_the_colours(tmp_path):
    source, out = tmp_path / "tagged.mp4", tmp_path / "out.mp4"
    tags = {
        "video": {"language": "fra", "title": "Grand-mère"},
        "audio": {"language": "deu", "title": "commentary"},
    }
    bt709_full = Colour(space=1, range=2, primaries=1, transfer=1)
    clips.write_clip(
        source, (clips.degraded_frame(t) for t in range(5)), tags=tags, colour=bt709_full
    )
    _, frames = _frames(source)
    _copy(source, out, crf=18)
    frame, streams = _first_frame(out)
    colour = (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc)
    assert colour == (1, 2, 1, 1)
    for kind in ("video", "audio"):
        assert streams[kind]["language"] == tags[kind]["language"]
        # mp4 stores a stream's title in its "name" box; FFmpeg reads it back by that name
        assert streams[kind].get("title", streams[kind].get("name")) == tags[kind]["title"]
    _, again = _frames(out)
    for a, b in zip(frames, again):  # converted with the matrix and range it is tagged with
        # Measured: 1.5 and a cast of <= 1.2 levels per channel; converted with BT.601
        # limited while tagged BT.709 full, 9.5 and a cast of 4-6 levels.
        assert np.abs(a.astype(int) - b).mean() < 3
        assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 2.5


def _mjpeg_clip(path, sizes, header=(160, 128)):
    """A Matroska clip of JPEG frames of the given `(width, height)` sizes behind a header
    that states `header`: each packet is a whole picture, so every size decodes."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = *header, "yuvj420p"
        video.time_base = Fraction(1, 25)
        for index, (width, height) in enumerate(sizes):
            image = cv2.resize(clips.degraded_frame(index), (width, height))
            packet = av.Packet(cv2.imencode(".jpg", image)[1].tobytes())
            packet.stream, packet.pts, packet.dts = video, index, index
            packet.time_base = video.time_base
            container.mux(packet)


def test_every_frame_is_checked_for_its_size_before_it_is_converted(tmp_path):
    changing, huge = tmp_path / "changing.mkv", tmp_path / "huge.mkv"
    _mjpeg_clip(changing, [(160, 128)] * 3 + [(96, 64)] * 2)
    with pytest.raises(BadVideoError) as error, VideoReader(changing) as reader:
        list(reader.frames())
    assert error.value.problem == (
        "frame 3 is 96x64, its first frame 160x128: a frame size that changes within a clip "
        "is not supported (cut the clip where it changes)"
    )
    # A 160x128 header, then a frame of 7200x7200 (52 MP, over the 50 MP limit).
    _mjpeg_clip(huge, [(160, 128)] * 2 + [(7200, 7200)] + [(160, 128)])
    with pytest.raises(BadVideoError) as error, VideoReader(huge) as reader:
        assert reader.info.width * reader.info.height == 160 * 128
        list(reader.frames())
    assert error.value.problem == "frame 2 is 7200x7200, more than 50000000 pixels"
    # A first frame too large: FFmpeg's probe of the stream already sees it.
    _mjpeg_clip(huge, [(7200, 7200)], header=(160, 128))
    with pytest.raises(BadVideoError, match="7200x7200 frames exceed 50000000 pixels"):
        VideoReader(huge)


def _transport_stream(source, target):
    with av.open(str(source)) as mp4, av.open(str(target), "w") as ts:
        streams = {s.index: ts.add_stream_from_template(s) for s in mp4.streams}
        for packet in mp4.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                ts.mux(packet)


def test_a_transport_stream_cut_short_says_so(tmp_path):
    mp4, whole, cut = tmp_path / "clip.mp4", tmp_path / "whole.ts", tmp_path / "cut.ts"
    clips.write_clip(mp4, (clips.degraded_frame(t) for t in range(40)))
    _transport_stream(mp4, whole)
    assert len(_frames(whole)[1]) == 40
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 5])
    with pytest.raises(BadVideoError) as error, VideoReader(cut) as reader:
        list(reader.frames())
    assert re.fullmatch(
        r"truncated: it ends inside a 188-byte transport-stream packet, after 1\d frames "
        r"\(0\.\d\d s\); a transport stream does not state its length, so how much is "
        "missing is unknown",
        error.value.problem,
    ), error.value.problem


def _restore(inputs, out, model_path, guide, **popen):
    """gfrnet-restore started on `inputs` (identity measures off: they need time, not here)."""
    flags = dict(
        model=model_path, input=inputs, guide=guide, output=out, image_size=SIZE, identity_every=0
    )
    command = [sys.executable, "-m", "gfrnet_tf.apps.restore"]
    command += [f"--{name}={value}" for name, value in flags.items()]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(command, cwd=REPO, env=env, text=True, **popen)


@pytest.fixture(scope="module")
def guide_file(tmp_path_factory):
    guide = tmp_path_factory.mktemp("guide") / "guide.png"
    cv2.imwrite(str(guide), cv2.cvtColor(load_sample()[0], cv2.COLOR_RGB2BGR))
    return guide


@pytest.mark.slow
def test_a_batch_of_hostile_clips_goes_on_past_each_bad_one(tiny_model, guide_file, tmp_path):
    _, model_path = tiny_model
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    clips.write_clip(
        inputs / "portrait.mp4", (clips.degraded_frame(t) for t in range(12)), display_rotation=90
    )
    clips.write_clip(inputs / "single.mp4", iter([clips.degraded_frame(0)]))
    _mjpeg_clip(inputs / "changing.mkv", [(160, 128)] * 3 + [(96, 64)] * 2)
    _mjpeg_clip(inputs / "huge.mkv", [(160, 128)] * 2 + [(7200, 7200)])
    process = _restore(
        inputs, out, model_path, guide_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
    errors = sorted(line for line in stderr.splitlines() if line.startswith("error:"))
    assert errors == [
        f"error: {inputs / 'changing.mkv'}: frame 3 is 96x64, its first frame 160x128: a frame "
        "size that changes within a clip is not supported (cut the clip where it changes)",
        f"error: {inputs / 'huge.mkv'}: frame 2 is 7200x7200, more than 50000000 pixels",
    ], errors
    report = ["faces.csv", "people", "people.json"]  # every run's report (docs/PEOPLE.md)
    assert sorted(os.listdir(out)) == [*report, "portrait_restored.mp4", "single_restored.mp4"]
    lines = {Path(line.split(":")[0]).name: line for line in stdout.splitlines() if ": " in line}
    # Stored sideways, it is shown upright: the face is found in every frame.
    assert "restored 12 frames (25 fps, display rotation applied and kept" in lines["portrait.mp4"]
    assert "faces in 12, 1 track(s)" in lines["portrait.mp4"]
    assert _first_frame(out / "portrait_restored.mp4")[0].rotation == 90
    assert "flicker not measured (no face in two consecutive frames)" in lines["single.mp4"]


def _wait_for_partial(folder, process, timeout=600):
    """The partial mp4 the restore is writing, once it holds some video."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the restore ended before it could be stopped"
        partials = [p for p in folder.glob(".*.partial.mp4") if p.stat().st_size > 0]
        if partials:
            return partials[0]
        time.sleep(0.2)
    raise AssertionError("no partial file appeared")


@pytest.mark.slow
def test_a_killed_clip_leaves_nothing_and_the_next_run_clears_a_kill_9s_leftover(
    tiny_model, guide_file, tmp_path
):
    _, model_path = tiny_model
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    # 200 frames: the clip is analysed whole before its first frame is written; once its
    # partial file holds bytes (after x264's look-ahead), the run went on writing for 6.5 s
    # at a load of 5 (measured), so a poll every 0.2 s stops it mid-write.
    clips.write_clip(inputs / "long.mp4", (clips.degraded_frame(t % 60) for t in range(200)))
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    stopped = _restore(inputs, out, model_path, guide_file, **quiet)
    _wait_for_partial(out, stopped)
    stopped.send_signal(signal.SIGTERM)  # `kill`, a closed terminal, a scheduler's stop
    assert stopped.wait(timeout=120) == 128 + signal.SIGTERM
    assert os.listdir(out) == []

    killed = _restore(inputs, out, model_path, guide_file, **quiet)
    leftover = _wait_for_partial(out, killed)
    killed.kill()  # SIGKILL: nothing of the process runs, its partial stays ...
    assert killed.wait(timeout=120) == -signal.SIGKILL and leftover.exists()
    # ... until the next run writes the same output (a short clip now, for time's sake).
    clips.write_clip(inputs / "long.mp4", (clips.degraded_frame(t) for t in range(3)))
    again = _restore(inputs, out, model_path, guide_file, **quiet)
    assert again.wait(timeout=600) == 0
    assert sorted(os.listdir(out)) == ["faces.csv", "long_restored.mp4", "people", "people.json"]
