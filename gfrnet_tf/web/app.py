"""The page's web app (Starlette): routes, visitors, limits and the work queue together.

`make_app(studio, ...)` returns an ASGI app to serve with uvicorn (`gfrnet-web`) or to
embed. Everything the page needs is served from the package (`web/static/`); the
Content-Security-Policy lets the browser fetch nothing from anywhere else. Uploads go
one file per request, so each is checked and answered on its own; a request body larger
than one file may be is cut off while it streams. The browser names things only by ids
the server gave the visitor; nothing it sends becomes a path.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gfrnet_tf.web.jobs import WorkQueue
from gfrnet_tf.web.uploads import UploadLimits, UploadRefused, shown_name
from gfrnet_tf.web.views import page_state, zip_results
from gfrnet_tf.web.visitors import COOKIE, TooManyVisitors, Visitor, Visitors
from gfrnet_tf.web.work import STARTED

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
# Multipart framing and the person's name around one file.
_FORM_OVERHEAD = 64 << 10
_SWEEP_SECONDS = 60
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BodyTooLarge(Exception):
    """A request body that went past its limit while it streamed."""


class _BodyLimit:
    """ASGI middleware: a request body larger than `limit` bytes ends in 413, whether its
    Content-Length says so up front or it only turns out while streaming."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge()
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> Response:
    return _error(f"the upload is larger than {limit >> 20} MB", 413)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=_HEADERS)


def _json(data, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status, headers=_HEADERS)


def make_app(
    studio,
    *,
    limits: UploadLimits = UploadLimits(),
    workers: int = 1,
    max_visitors: int = 20,
    idle_seconds: float = 3600,
    allowed_hosts=LOOPBACK_HOSTS,
) -> Starlette:
    """The page's app around a `web.work.Studio` (the model and the library's stages).

    `allowed_hosts`: the Host headers answered (loopback names by default, so a web site
    cannot reach the page through a rebound domain name); `("*",)` for any.
    """
    visitors = Visitors(limits, max_visitors, idle_seconds)
    queue = WorkQueue(workers)

    def visitor_of(request: Request) -> Visitor | None:
        return visitors.get(request.cookies.get(COOKIE))

    def with_cookie(response: Response, visitor: Visitor) -> Response:
        response.set_cookie(COOKIE, visitor.token, httponly=True, samesite="strict")
        return response

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_HEADERS)

    async def state(request: Request) -> Response:
        visitor = visitor_of(request)
        return _json(_state(visitor, queue, limits))

    async def upload(request: Request) -> Response:
        visitor = visitor_of(request)
        if visitor is None:
            try:
                visitor = visitors.create()
            except TooManyVisitors:
                return _error("too many people are using this page right now; try later", 503)
        if visitor.busy:
            return with_cookie(_error("wait until the restoration has finished", 409), visitor)
        try:
            async with request.form(max_files=1, max_fields=2) as form:
                file = form.get("file")
                if file is None or isinstance(file, str):
                    return with_cookie(_error("no file in the upload"), visitor)
                person = str(form.get("person") or "").strip()
                added, refused = await run_in_threadpool(
                    studio.add_upload, visitor, file.file, shown_name(file.filename), person
                )
        except BodyTooLarge:
            return with_cookie(_too_large(limits.max_file_bytes + _FORM_OVERHEAD), visitor)
        except UploadRefused as refused_person:  # a bad name for a person
            return with_cookie(_error(str(refused_person)), visitor)
        except ValueError as error:  # a malformed multipart body
            return with_cookie(_error(f"the upload could not be read ({error})"), visitor)
        return with_cookie(
            _json(
                {
                    "added": added,
                    "refused": [{"name": r.source, "problem": r.problem} for r in refused],
                }
            ),
            visitor,
        )

    async def remove_upload(request: Request) -> Response:
        visitor = visitor_of(request)
        upload_id = request.path_params["upload_id"]
        if visitor is None or upload_id not in visitor.uploads:
            return _error("no such file", 404)
        if visitor.busy or visitor.run is not None:  # no need to wait for the visitor's lock
            return _error(STARTED, 409)
        try:
            await run_in_threadpool(studio.remove_upload, visitor, upload_id)
        except KeyError:  # removed meanwhile by another request of theirs
            return _error("no such file", 404)
        except UploadRefused as refused:
            return _error(refused.problem, 409)
        return _json({"removed": upload_id})

    async def restore(request: Request) -> Response:
        visitor = visitor_of(request)
        if visitor is None or not studio.has_photos(visitor):
            return _error("add a photo or a clip first")
        options = await _json_body(request)
        restore_all = bool(options.get("restore_all"))
        if not queue.submit(
            visitor, lambda report: studio.restore(visitor, restore_all, report), "waiting"
        ):
            return _error("a restoration is already running", 409)
        return _json({"started": True}, 202)

    async def change_face(request: Request) -> Response:
        visitor = visitor_of(request)
        face_id = request.path_params["face_id"]
        if visitor is None or not studio.knows_face(visitor, face_id):
            return _error("no such face", 404)
        change = await _json_body(request)
        guide = change.get("guide")
        exclude = change.get("exclude")
        if not isinstance(guide, (str, type(None))) or not isinstance(exclude, (bool, type(None))):
            return _error("a change is {'exclude': true|false} or {'guide': id}")
        if not studio.knows_face(visitor, face_id, guide):
            return _error("no such guide for this face", 404)
        if not queue.submit(
            visitor,
            lambda report: studio.change_face(visitor, face_id, exclude, guide, report),
            "waiting",
        ):
            return _error("a restoration is already running", 409)
        return _json({"started": True}, 202)

    async def file(request: Request) -> Response:
        visitor = visitor_of(request)
        entry = visitor.files.get(request.path_params["file_id"]) if visitor else None
        if entry is None or not entry[0].is_file():
            return _error("no such file", 404)
        path, media_type, download = entry
        return FileResponse(
            path,
            media_type=media_type,
            headers=_HEADERS,
            filename=download if request.query_params.get("download") else None,
        )

    async def download_all(request: Request) -> Response:
        visitor = visitor_of(request)
        if visitor is None or visitor.busy or visitor.results is None:
            return _error("nothing restored yet", 404)
        path = await run_in_threadpool(zip_results, visitor)
        return FileResponse(
            path, media_type="application/zip", filename="restored.zip", headers=_HEADERS
        )

    async def forget(request: Request) -> Response:
        visitor = visitor_of(request)
        if visitor is not None:
            visitors.forget(visitor)
        response = _json({"forgotten": True})
        response.delete_cookie(COOKIE)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def sweep():
            while True:
                await asyncio.sleep(_SWEEP_SECONDS)
                visitors.remove_idle()

        sweeper = asyncio.create_task(sweep())
        try:
            yield
        finally:
            sweeper.cancel()
            queue.close()
            visitors.close()

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/uploads/{upload_id}", remove_upload, methods=["DELETE"]),
        Route("/api/restore", restore, methods=["POST"]),
        Route("/api/faces/{face_id}", change_face, methods=["POST"]),
        Route("/api/files/{file_id}", file),
        Route("/api/restored.zip", download_all),
        Route("/api/forget", forget, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
            Middleware(_BodyLimit, limit=limits.max_file_bytes + _FORM_OVERHEAD),
        ],
        exception_handlers={BodyTooLarge: lambda request, error: _too_large(limits.max_file_bytes)},
    )
    app.state.visitors = visitors
    app.state.queue = queue
    return app


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _state(visitor: Visitor | None, queue: WorkQueue, limits: UploadLimits) -> dict:
    """Everything the page shows, for this visitor only."""
    if visitor is None:
        return {
            "limits": limits.describe(),
            "uploads": [],
            "people": [],
            "results": None,
            "progress": None,
        }
    progress = visitor.progress
    return {
        "limits": limits.describe(),
        **page_state(visitor),
        "progress": {
            "state": progress.state,
            "stage": progress.stage,
            "done": progress.done,
            "total": progress.total,
            "message": progress.message,
            "queue_position": queue.position(visitor),
        },
    }
