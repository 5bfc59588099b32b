"""Start the whole todo app with one command: the engine, the worker, and a small server for the page.

The engine (``streamhub serve -c examples/todo/config.yaml``) and ``worker.py`` run as child processes whose
output is forwarded here; this process serves ``index.html`` and ``/config.json`` (where the page finds the
engine's ports) on ``$PAGE_PORT`` (default 8080), and ``/token?name=...``: the page's token for the stream port,
signed with a secret only this process and the worker know (``TODO_SECRET``, fresh each run unless set), so the
worker's auth function can trust the name in it. Ports come from the same environment variables the config reads
(``WORKER_PORT``, ``STREAM_PORT``, ``API_PORT``, ``PAGE_PORT``). ``--no-engine`` uses an engine that is already
running (the tests start and restart it themselves). Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
READY_TIMEOUT = 30.0
MAX_NAME = 40


def ports(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The ports of this run, from the environment (the config's ``${VAR:default}`` defaults otherwise)."""
    defaults = {"WORKER_PORT": 49134, "STREAM_PORT": 3112, "API_PORT": 3111, "PAGE_PORT": 8080}
    return {name: int(environ.get(name, default)) for name, default in defaults.items()}


def sign(secret: bytes, name: str) -> str:
    """A token holding ``name`` that worker.py's ``token_name`` accepts: ``<base64url name>.<hmac-sha256>``."""
    encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
    return f"{encoded}.{hmac.new(secret, encoded.encode(), hashlib.sha256).hexdigest()}"


def page_app(port: dict[str, int], secret: bytes) -> web.Application:
    """``/`` is the page; ``/config.json`` tells it where the stream and REST ports are; ``/token`` signs a name.

    A demo sign-in: any name is signed. A real app would sign the name of the user its login checked.
    """
    settings = {"stream": f"ws://127.0.0.1:{port['STREAM_PORT']}",
                "client": f"http://127.0.0.1:{port['STREAM_PORT']}/client.js",
                "api": f"http://127.0.0.1:{port['API_PORT']}"}

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(HERE / "index.html", headers={"Cache-Control": "no-store"})

    async def config(_: web.Request) -> web.Response:
        return web.json_response(settings, headers={"Cache-Control": "no-store"})

    async def token(request: web.Request) -> web.Response:
        name = request.query.get("name", "").strip()
        if not name or len(name) > MAX_NAME:
            return web.json_response({"error": f"name must be 1 to {MAX_NAME} characters"}, status=400)
        return web.json_response({"token": sign(secret, name)}, headers={"Cache-Control": "no-store"})

    async def no_icon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/index.html", index), web.get("/config.json", config),
                    web.get("/token", token), web.get("/favicon.ico", no_icon)])
    return app


class Child:
    """A child process whose output is forwarded here, each line prefixed with its name."""

    def __init__(self, proc: asyncio.subprocess.Process, forwarding: asyncio.Task[None]) -> None:
        self.proc = proc
        self.forwarding = forwarding

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await self.proc.wait()
        await self.forwarding


async def start_child(name: str, args: list[str], ready: bytes, env: dict[str, str] | None = None) -> Child:
    """Start a child, wait for its ready line, then keep forwarding its output.

    Children get their own session, so Ctrl-C reaches only this process, which then stops them in order.
    """
    proc = await asyncio.create_subprocess_exec(*args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert proc.stdout is not None
    async with asyncio.timeout(READY_TIMEOUT):
        while not (line := await proc.stdout.readline()).startswith(ready):
            if not line:
                raise SystemExit(f"{name} exited before it was ready (exit code {await proc.wait()})")
            print(f"[{name}] {line.decode().rstrip()}", flush=True)
    print(f"[{name}] {line.decode().rstrip()}", flush=True)
    return Child(proc, asyncio.get_running_loop().create_task(forward(name, proc)))


async def forward(name: str, proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        print(f"[{name}] {line.decode().rstrip()}", flush=True)
    print(f"[{name}] exited with code {await proc.wait()}", flush=True)


async def main(with_engine: bool) -> None:
    port = ports()
    secret = os.environ.get("TODO_SECRET") or secrets.token_hex(32)
    children: list[Child] = []
    runner = web.AppRunner(page_app(port, secret.encode()), access_log=None)
    try:
        if with_engine:
            children.append(await start_child(
                "engine", [sys.executable, "-m", "streamhub", "serve", "-c", str(HERE / "config.yaml")],
                b"streamhub ready"))
        children.append(await start_child("worker", [sys.executable, str(HERE / "worker.py")], b"todo worker ready",
                                          {"STREAMHUB_URL": f"ws://127.0.0.1:{port['WORKER_PORT']}",
                                           "TODO_SECRET": secret}))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port["PAGE_PORT"]).start()
        print(f"todo app ready: open http://127.0.0.1:{port['PAGE_PORT']}/", flush=True)
        await wait_for_stop(children)
    finally:
        await runner.cleanup()
        for child in reversed(children):
            await child.stop()


async def wait_for_stop(children: list[Child]) -> None:
    """Until SIGINT/SIGTERM, or until a child exits (the app would not work without it)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.ensure_future(stop.wait()), *(asyncio.ensure_future(child.proc.wait()) for child in children)]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-engine", action="store_true", help="use an engine that is already running")
    asyncio.run(main(not parser.parse_args().no_engine))
