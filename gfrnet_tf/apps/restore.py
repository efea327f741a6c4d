"""gfrnet-restore: restore the faces in your photos with a guide photo of the same person.

    gfrnet-restore --model runs/full/model.keras --input photos/ \
        --guide alice_frontal.jpg [--guide alice_side.jpg ...] --output restored/ \
        [--aligned] [--flow] [--image_size 256] [--precision mixed_bfloat16]

`--model` is a training checkpoint / `.keras` file, a SavedModel folder or a `.tflite`
file. Faces are found with MTCNN, cropped as in training, restored and pasted back with
a feathered edge; with several guides each face gets the one closest in pose (dlib's 68
landmarks, or MTCNN's 5 points without dlib) and the choice is printed. `--aligned`
takes every input (and guide) as an already cropped square face. `--precision
mixed_bfloat16` runs a checkpoint or `.keras` model in bf16 where the device has it
natively (`gfrnet_tf.precision`; else float32, said); an export runs as it was exported.

Videos (by suffix or content; a folder may mix them with photos) become
`NAME_restored.mp4`: same frames, rate and size, audio copied, faces tracked between
detections every `--detect_every` frames; see docs/VIDEO.md.

Per photo `NAME.ext` the output folder receives `NAME_restored.png` (whole photo, same
size; `NAME_ext_...` where two inputs share a name) and per face `k`: `NAME_face{k}.png`
(restored crop), `NAME_face{k}_compare.png` (degraded | guide | warped guide | restored)
and with `--flow` `NAME_face{k}_flow.png`. A name too long for the file system is cut and
tagged with a digest of the photo's name (see `restoration.outputs`).
The output folder must lie outside the input folder, and no input or guide file is ever
replaced. A file that cannot be read or has no face gets one line; the batch goes on, a
summary by reason ends the run and the exit status is 1 if anything failed. An output
folder that cannot be written (read-only, full) stops the run with one line; the photo
being written then has no output.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from gfrnet_tf.apps.batch import Failures
from gfrnet_tf.apps.common import define_precision_flag, inference_policy, make_run
from gfrnet_tf.errors import BadConfigError, BadModelFileError, GFRNetError, NoFaceError
from gfrnet_tf.io import load_image
from gfrnet_tf.io.paths import printable
from gfrnet_tf.restoration.outputs import OutputFolder, OutputFolderError
from gfrnet_tf.restoration.photos import PhotoRestorer
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.video.files import is_video_file
from gfrnet_tf.visualize import flow_to_rgb, image_grid

MODEL = flags.DEFINE_string(
    "model", None, "Checkpoint/.keras file, SavedModel folder or .tflite file."
)
INPUT = flags.DEFINE_string("input", None, "A photo or video, or a folder of them (not recursive).")
GUIDE = flags.DEFINE_multi_string(
    "guide", None, "High-quality photo of the same person; repeatable."
)
OUTPUT = flags.DEFINE_string("output", None, "Folder for the results.")
ALIGNED = flags.DEFINE_bool("aligned", False, "Inputs and guides are square face crops already.")
FLOW = flags.DEFINE_bool("flow", False, "Also save a colour picture of the predicted flow.")
IMAGE_SIZE = flags.DEFINE_integer(
    "image_size",
    None,
    "Model input size. Default: the SavedModel's or .tflite file's size; else each "
    "--aligned crop's own size; else 256.",
)
DETECT_EVERY = flags.DEFINE_integer(
    "detect_every",
    10,
    "Videos: detect faces every N frames, track them in between (1 = detect on every frame).",
)
VIDEO_CRF = flags.DEFINE_integer(
    "video_crf", 18, "Videos: H.264 quality, 0 (lossless RGB) .. 51; 18 looks lossless."
)
IDENTITY_EVERY = flags.DEFINE_integer(
    "identity_every",
    10,
    "Videos: measure the identity distance to the guide every N frames (dlib; 0 = never).",
)
PRECISION = define_precision_flag(
    "float32",
    "What a checkpoint or .keras model computes in: mixed_bfloat16 where the device has "
    "bf16 natively (else float32, said); an export runs as exported.",
)
flags.mark_flags_as_required(["model", "input", "guide", "output"])

DEFAULT_IMAGE_SIZE = 256
# The longest text an output name adds to a photo's stem (up to 1000 faces per photo).
LONGEST_SUFFIX = "_face999_compare.png"


def input_photos(path: Path) -> list[Path]:
    """The photo, or every visible regular file of the folder (non-images fail by name later)."""
    if path.is_dir():
        try:
            return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as error:
            raise BadConfigError(path, f"--input cannot be listed ({error.strerror})")
    if path.is_file():
        return [path]
    raise BadConfigError(path, "--input is neither a file nor a folder")


def output_images(restored_photo, faces) -> list[tuple[str, object]]:
    """`(name suffix, image)` of every output of one photo, the whole photo last: a photo
    whose restored version exists has all its outputs."""
    images = []
    for k, face in enumerate(faces):
        result = face.result
        images.append((f"_face{k}.png", result.restored))
        images.append(
            (
                f"_face{k}_compare.png",
                image_grid(
                    [[face.degraded, face.guide.crop, result.warped_guide, result.restored]]
                ),
            )
        )
        if FLOW.value and result.flow is not None:
            images.append((f"_face{k}_flow.png", flow_to_rgb(result.flow)))
    images.append(("_restored.png", restored_photo))
    return images


def describe(photo_path: Path, faces) -> str:
    guides = ", ".join(
        f"face {k}: guide {printable(Path(face.guide.source).name)}"
        + (f" (pose distance {min(face.distances):.3f})" if face.distances else "")
        for k, face in enumerate(faces)
    )
    return f"{printable(photo_path)}: restored {len(faces)} face(s); {guides}"


def restore_video(photos: PhotoRestorer, path: Path, destination: Path) -> str:
    """Restores one video file; its summary line."""
    if photos.aligned:
        raise BadConfigError(path, "--aligned is for face-crop photos; a video's faces are tracked")
    try:
        from gfrnet_tf.video.clip import restore_clip
        from gfrnet_tf.video.identity import optional_embedder
        from gfrnet_tf.video.streaming import VideoRestorer
    except ImportError as error:
        raise BadConfigError(path, f"videos need PyAV: pip install 'gfrnet_tf[video]' ({error})")
    videos = VideoRestorer(photos, detect_every=DETECT_EVERY.value)
    identity = optional_embedder() if IDENTITY_EVERY.value else None
    return restore_clip(
        videos,
        path,
        destination,
        crf=VIDEO_CRF.value,
        identity=identity,
        identity_every=IDENTITY_EVERY.value,
    ).describe()


def main(argv):
    del argv
    policy = inference_policy(PRECISION.value)  # a refused precision leaves no output folder
    input_path = Path(INPUT.value)
    inputs = input_photos(input_path)
    # Checked (and created) before the model is loaded.
    output = OutputFolder(
        OUTPUT.value, input_path, protected=[*inputs, *GUIDE.value], longest_suffix=LONGEST_SUFFIX
    )
    restorer = load_restorer(MODEL.value, policy)
    # Exported models know their size; a Keras model takes any size, so aligned crops
    # are then used at their own size.
    image_size = (
        IMAGE_SIZE.value or restorer.image_size or (None if ALIGNED.value else DEFAULT_IMAGE_SIZE)
    )
    photos = PhotoRestorer(restorer, image_size, aligned=ALIGNED.value)
    failures = Failures()
    for guide_path in GUIDE.value:
        try:
            photos.add_guide(load_image(guide_path), guide_path, pose=len(GUIDE.value) > 1)
        except GFRNetError as error:
            failures.add_error(error)
    if not photos.guides:
        raise NoFaceError("--guide", "no guide photo has a usable face")
    if len(photos.guides) > 1:
        print(f"choosing guides by pose with {photos.pose.name}")

    restored = 0
    stems = output.stems(inputs)
    for photo_path in inputs:
        try:
            if is_video_file(photo_path):
                print(
                    restore_video(
                        photos, photo_path, output.target(f"{stems[photo_path]}_restored.mp4")
                    )
                )
                restored += 1
                continue
            restored_photo, faces = photos.restore(load_image(photo_path), photo_path)
            output.write(stems[photo_path], output_images(restored_photo, faces))
        except (BadModelFileError, OutputFolderError):
            raise  # the model or the folder, not this photo: every other photo would fail too
        except GFRNetError as error:
            failures.add_error(error)
            continue
        restored += 1
        print(describe(photo_path, faces))

    print(f"restored {restored} file(s) into {printable(output.path)}")
    failures.exit_if_any()


run = make_run(main)

if __name__ == "__main__":
    run()
