"""A page for people restoring their own photos (`gfrnet-web`), on the library's stages.

`make_app(load_studio(model))` is the ASGI app (Starlette) that `gfrnet-web` serves and
that a program may embed; `serve.listen` / `serve.serve` run it with uvicorn. The page
shows what `restoration.library` decided for each face (docs/PEOPLE.md) and lets a person
override one face at a time; it decides nothing itself.
"""

from gfrnet_tf.web.app import make_app
from gfrnet_tf.web.uploads import UploadLimits
from gfrnet_tf.web.work import Studio, load_studio

__all__ = ["Studio", "UploadLimits", "load_studio", "make_app"]
