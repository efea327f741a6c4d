"""gfrnet-restore: restore the faces of your photos, each with a good photo of the same person.

    gfrnet-restore --model M --input ROOT --output OUT          # a whole library
    gfrnet-restore --model M --input ROOT --output OUT --guides people/   # people/<name>/*.jpg
    gfrnet-restore --model M --input photos/ --output OUT --guide alice.jpg [--guide ...]

`--model` is a training checkpoint / `.keras` file, a SavedModel folder or a `.tflite`
file. ROOT (a photo, or a folder walked recursively; photos and clips) is analysed once:
every face is found (MTCNN), located (dlib's 68 points), embedded (dlib's identity
ResNet) and scored (size, sharpness, frontal, eyes open). Each face is matched to a
person by identity first: the people named by `--guide FILE` (one face per guide photo)
or `--guides DIR` (a folder per person), and, per top-level folder of ROOT, the groups of
everyone else (their best faces become their guides). A face is restored only with its
own person's guide closest in pose, and only if it is clearly worse than that guide; a
face of nobody known is left as it is, never restored with a stranger's face. A face the
model would make less sharp is kept. `--any_person` gives every face the guide closest
in pose among all guides (no identity check); `--restore_all` also restores good faces.

OUT mirrors ROOT: per photo with a restored face, `OUT/<path>/NAME_restored.png` (whole
photo, same size) and per restored face `k` (counted from the left) `NAME_face{k}.png`
and `NAME_face{k}_compare.png` (labelled panels degraded | guide | warped guide |
restored; small faces enlarged, nearest neighbour),
with `--flow` `NAME_face{k}_flow.png`. Every run writes `OUT/faces.csv` (one row per face
and per file without one), `OUT/people.json` and a contact sheet per person in
`OUT/people/` (docs/PEOPLE.md). Clips become `NAME_restored.mp4` (docs/VIDEO.md), each
face track restored with its own person's guide.

`--aligned` takes every input and guide as an already cropped square face and restores
it with the guide closest in pose (no identity check, no report); its restored face is
`NAME_restored.png`, with `NAME_face0_compare.png` beside it. The output folder must
lie outside ROOT, and no input or guide file is ever replaced. A file that cannot be read
gets one `error:` line, the run goes on, and the exit status is 1; a photo without a face
is a `faces.csv` row. An output folder that cannot be written stops the run in one line.

`--precision mixed_bfloat16` runs a checkpoint or `.keras` model in bf16 where the device
has it natively (`gfrnet_tf.precision`; else float32, said); an export runs as exported.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from gfrnet_tf.apps import archive
from gfrnet_tf.apps.batch import Failures
from gfrnet_tf.apps.common import define_precision_flag, inference_policy, make_run
from gfrnet_tf.errors import BadConfigError, BadModelFileError, GFRNetError, NoFaceError
from gfrnet_tf.io import load_image
from gfrnet_tf.io.media import is_video_file
from gfrnet_tf.io.paths import printable
from gfrnet_tf.video import clip_stages
from gfrnet_tf.visualize import PAIR_PANELS, flow_to_rgb, labelled_grid

MODEL = flags.DEFINE_string(
    "model", None, "Checkpoint/.keras file, SavedModel folder or .tflite file."
)
INPUT = flags.DEFINE_string(
    "input", None, "A photo or clip, or a folder of them (walked recursively)."
)
GUIDE = flags.DEFINE_multi_string(
    "guide",
    [],
    "A good photo of one person (one face); repeatable. Photos of one person "
    "are joined by identity and named after the first one's file.",
)
GUIDES = flags.DEFINE_string(
    "guides", None, "A folder with a folder of good photos per person: DIR/<name>/*.jpg."
)
ANY_PERSON = flags.DEFINE_bool(
    "any_person",
    False,
    "No identity check: every face takes the guide closest in pose "
    "among all guides (for a user who knows every face is the guides' person).",
)
RESTORE_ALL = flags.DEFINE_bool(
    "restore_all",
    False,
    "Also restore faces as good as their guides, and keep the model's "
    "result even where it is less sharp than the face was.",
)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Faces per model call.")
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
flags.mark_flags_as_required(["model", "input", "output"])
flags.adopt_module_key_flags(archive)  # --runner and its options are listed by --help


def input_photos(path: Path) -> list[Path]:
    """`--aligned`: the photo, or every visible regular file of the folder (not recursive)."""
    if path.is_dir():
        try:
            return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as error:
            raise BadConfigError(path, f"--input cannot be listed ({error.strerror})")
    if path.is_file():
        return [path]
    raise BadConfigError(path, "--input is neither a file nor a folder")


def aligned_images(restored_photo, face) -> list[tuple[str, object]]:
    """`(name suffix, image)` of an aligned crop's outputs, the whole photo last. The crop is
    its one face, so the restored face is the restored photo: no `_face0.png` beside it."""
    result = face.result
    labels = [
        PAIR_PANELS[0],
        f"guide: {printable(Path(face.guide.source).name)}",
        *PAIR_PANELS[2:4],
    ]
    panels = [face.degraded, face.guide.crop, result.warped_guide, result.restored]
    images = [("_face0_compare.png", labelled_grid(labels, [panels]))]
    if FLOW.value and result.flow is not None:
        images.append(("_face0_flow.png", flow_to_rgb(result.flow)))
    images.append(("_restored.png", restored_photo))
    return images


def restore_aligned(failures: Failures, policy: str) -> None:
    """`--aligned`: each input is one face crop, restored with the guide closest in pose."""
    from gfrnet_tf.restoration.listing import LONGEST_SUFFIX
    from gfrnet_tf.restoration.outputs import OutputFolder, OutputFolderError
    from gfrnet_tf.restoration.photos import PhotoRestorer
    from gfrnet_tf.restoration.restorer import load_restorer

    input_path = Path(INPUT.value)
    inputs = input_photos(input_path)
    output = OutputFolder(
        OUTPUT.value, input_path, protected=[*inputs, *GUIDE.value], longest_suffix=LONGEST_SUFFIX
    )
    restorer = load_restorer(MODEL.value, policy)  # once the output folder is known to work
    photos = PhotoRestorer(restorer, IMAGE_SIZE.value or restorer.image_size, aligned=True)
    for guide_path in GUIDE.value:
        try:
            photos.add_guide(load_image(guide_path), guide_path, pose=len(GUIDE.value) > 1)
        except GFRNetError as error:
            failures.add_error(error)
    if not photos.guides:
        raise NoFaceError("--guide", "--aligned needs a guide photo with a usable face")
    stems, restored = output.stems(inputs), 0
    for photo_path in inputs:
        try:
            if is_video_file(photo_path):
                raise BadConfigError(photo_path, "--aligned is for face crops, not clips")
            restored_photo, (face,) = photos.restore(load_image(photo_path), photo_path)
            output.write(stems[photo_path], aligned_images(restored_photo, face))
        except (BadModelFileError, OutputFolderError):
            raise  # the model or the folder, not this photo: every other photo would fail too
        except GFRNetError as error:
            failures.add_error(error)
            continue
        restored += 1
        guide = printable(Path(face.guide.source).name)
        print(f"{printable(photo_path)}: restored 1 face(s); face 0: guide {guide}")
    print(f"restored {restored} file(s) into {printable(output.path)}")


def restore_by_person(failures: Failures, policy: str, beam_args: list[str]) -> None:
    """Every face of the library with its own person's guide (docs/PEOPLE.md); with
    `--runner`, on Apache Beam with `beam_args` (`apps.archive`)."""
    from gfrnet_tf.restoration.library import (
        DEFAULT_IMAGE_SIZE,
        FaceAnalyser,
        RestoreSettings,
        default_options,
        named_people,
        restore_library,
    )
    from gfrnet_tf.restoration.listing import LONGEST_SUFFIX
    from gfrnet_tf.restoration.outputs import OutputFolder
    from gfrnet_tf.restoration.restorer import load_restorer

    root = Path(INPUT.value)
    guide_files = [Path(p) for p in GUIDE.value]
    output = OutputFolder(
        OUTPUT.value, root, protected=[*guide_files], longest_suffix=LONGEST_SUFFIX
    )
    restorer = load_restorer(MODEL.value, policy)  # once the output folder is known to work
    analyser = FaceAnalyser()
    named = named_people(analyser, guide_files, GUIDES.value)
    for source, problem in named.problems:
        failures.add("guide", source, problem)
    if (guide_files or GUIDES.value) and not named.people:
        raise NoFaceError("--guide", "no guide photo has one usable face")
    settings = RestoreSettings(
        IMAGE_SIZE.value or restorer.image_size or DEFAULT_IMAGE_SIZE,
        batch_size=BATCH_SIZE.value,
        keep_sharper=not RESTORE_ALL.value,
        flow=FLOW.value,
    )
    options = default_options(ANY_PERSON.value, RESTORE_ALL.value)
    clips = clip_stages(
        detect_every=DETECT_EVERY.value, crf=VIDEO_CRF.value, identity_every=IDENTITY_EVERY.value
    )

    def warn(path, problem):
        failures.add("bad_file", path, problem)

    if archive.RUNNER.value:  # the same restoration on Apache Beam
        summary = archive.restore_on_beam(
            root, output, MODEL.value, named, settings, options, clips, beam_args, warn, policy
        )
    else:
        summary = restore_library(
            root, output, restorer, analyser, settings, options, named, clips, warn=warn
        )
    print(f"{summary.describe()}; report in {printable(output.path)}")


def main(argv):
    archive.check_flags(ALIGNED.value)
    if ALIGNED.value and not GUIDE.value:
        raise BadConfigError("--aligned", "needs --guide")
    if ALIGNED.value and (GUIDES.value or ANY_PERSON.value or RESTORE_ALL.value):
        raise BadConfigError("--aligned", "takes --guide only (no identity matching)")
    policy = inference_policy(PRECISION.value)  # a refused precision leaves no output folder
    failures = Failures()
    if ALIGNED.value:
        restore_aligned(failures, policy)
    else:
        restore_by_person(failures, policy, beam_args=argv[1:])
    failures.exit_if_any()


run = make_run(main, passes_on=archive.runner_given)

if __name__ == "__main__":
    run()
