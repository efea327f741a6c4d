"""gfrnet-web: a page in your browser for restoring the faces in your own photos.

    gfrnet-web --model runs/full/model.keras [--port 8000]

then open http://127.0.0.1:8000/ in a browser on the same computer. Drop photos (or a
folder, a zip, a short clip), add guide photos of the people if you have them, press
Restore, compare each face before and after, change what you do not like, download.
The page listens on 127.0.0.1 only: nothing is reachable from another computer unless
`--host` says so (then it warns). Uploads are limited in count, bytes and pixels, and each
visitor's files are kept apart and deleted after. See README, "A page for your photos".
"""

from __future__ import annotations

import sys

from absl import flags

from gfrnet_tf.apps.common import make_run
from gfrnet_tf.errors import optional_dependency

MODEL = flags.DEFINE_string(
    "model", None, "Checkpoint/.keras file, SavedModel folder or .tflite file."
)
PORT = flags.DEFINE_integer("port", 8000, "Port to listen on (0: any free port).", lower_bound=0)
HOST = flags.DEFINE_string(
    "host",
    "127.0.0.1",
    "Address to listen on. Anything but a loopback address lets other computers use the "
    "page (and see nothing of other visitors, but use this computer's time); it warns.",
)
IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Model input size. Default: the model's own size, else 256."
)
WORKERS = flags.DEFINE_integer(
    "workers",
    1,
    "Restorations run at once; the others wait in order (1 uses both cores best).",
    lower_bound=1,
)
MAX_FILES = flags.DEFINE_integer(
    "max_files", 50, "Files a visitor may add (zip members count).", lower_bound=1
)
MAX_MEGABYTES = flags.DEFINE_integer(
    "max_megabytes", 40, "Largest file a visitor may add, in MB.", lower_bound=1
)
MAX_TOTAL_MEGABYTES = flags.DEFINE_integer(
    "max_total_megabytes", 400, "All the files of one visitor together, in MB.", lower_bound=1
)
MAX_MEGAPIXELS = flags.DEFINE_float(
    "max_megapixels",
    40.0,
    "Largest photo (or clip frame) a visitor may add, in megapixels.",
    lower_bound=0.001,
)
MAX_CLIP_FRAMES = flags.DEFINE_integer(
    "max_clip_frames", 1500, "Longest clip, in frames.", lower_bound=1
)
flags.mark_flags_as_required(["model"])


def main(argv):
    del argv
    with optional_dependency():  # Starlette and uvicorn: the `web` extra
        from gfrnet_tf.web import UploadLimits, load_studio, make_app
        from gfrnet_tf.web.app import LOOPBACK_HOSTS
        from gfrnet_tf.web.serve import is_loopback, listen, server

    limits = UploadLimits(
        max_files=MAX_FILES.value,
        max_file_bytes=MAX_MEGABYTES.value << 20,
        max_total_bytes=MAX_TOTAL_MEGABYTES.value << 20,
        max_pixels=int(MAX_MEGAPIXELS.value * 1e6),
        max_clip_frames=MAX_CLIP_FRAMES.value,
    )
    local = is_loopback(HOST.value)
    sock = listen(HOST.value, PORT.value)  # a busy port fails before the model loads
    studio = load_studio(MODEL.value, IMAGE_SIZE.value)
    if not local:
        print(
            f"warning: listening on {HOST.value}: anyone who can reach this computer on port "
            f"{PORT.value} can upload photos to it and use its time",
            file=sys.stderr,
        )
    app = make_app(
        studio,
        limits=limits,
        workers=WORKERS.value,
        allowed_hosts=LOOPBACK_HOSTS if local else ("*",),
    )
    port = sock.getsockname()[1]
    print(f"open http://{'127.0.0.1' if local else HOST.value}:{port}/ in your browser", flush=True)
    server(app, sock).run(sockets=[sock])


run = make_run(main)

if __name__ == "__main__":
    run()
