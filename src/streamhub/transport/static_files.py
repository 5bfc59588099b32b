"""The browser client the stream port serves: ``GET /client.js`` and its types ``GET /client.d.ts``.

Served from the installed package, so a page always gets the client that matches the engine it talks to. Any
origin may load them (``Access-Control-Allow-Origin: *``): a page served elsewhere (the REST port, a dev server)
imports the module cross-origin, which browsers do in CORS mode, and the files are public code with no
credentials involved. ``ETag`` + ``no-cache`` let browsers keep a copy yet pick up a new engine's client at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

__all__ = ["StaticFile", "client_files", "static_routes"]


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file held in memory with the headers it is served with."""

    body: bytes
    content_type: str
    etag: str

    async def handle(self, request: web.Request) -> web.Response:
        """Serve the file, or 304 when the browser's copy is current."""
        headers = {"ETag": self.etag, "Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*",
                   "X-Content-Type-Options": "nosniff"}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type=self.content_type, charset="utf-8", headers=headers)


def _load(name: str, content_type: str) -> StaticFile:
    body = resources.files("streamhub.transport").joinpath("static", name).read_bytes()
    return StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"')


def client_files() -> dict[str, StaticFile]:
    """URL path -> file, read once from the package."""
    return {
        "/client.js": _load("streamhub.js", "text/javascript"),
        "/client.d.ts": _load("streamhub.d.ts", "application/typescript"),
    }


def static_routes() -> list[web.RouteDef]:
    """GET (and HEAD) routes for the browser client files."""
    return [web.get(path, file.handle) for path, file in client_files().items()]
