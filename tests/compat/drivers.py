"""Run workers written with the published iii SDKs (PyPI and npm) as real processes, and talk to them.

Each driver is a small program using only the SDK's public API (``iii_py_driver.py``, ``node/driver.mjs``): the
test sends it commands as JSON lines and reads ``@@``-prefixed JSON answers and handler invocations.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import timeout

HERE = Path(__file__).parent
NODE_DIR = HERE / "node"
KINDS = ("python", "node")


def node_sdk_installed() -> None:
    """Install the npm packages once (``npm ci`` from the lockfile) if they are not there yet."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js is not installed: the npm iii-sdk compatibility tests need node and npm")
    if not (NODE_DIR / "node_modules" / "iii-sdk" / "package.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)


def command_for(kind: str, url: str) -> list[str]:
    if kind == "python":
        return [sys.executable, str(HERE / "iii_py_driver.py"), url]
    node_sdk_installed()
    return ["node", str(NODE_DIR / "driver.mjs"), url]


class SdkWorker:
    """One published-SDK worker process; ``env`` adds variables (e.g. ``III_TOKEN``) to a clean copy of ours.

    ``expect_ready=False`` starts it without waiting for its ready line (PyPI iii-sdk blocks up to 30 s in
    ``register_worker`` while it cannot connect); such a process is killed on exit if it never got ready.
    """

    def __init__(self, kind: str, url: str, env: dict[str, str] | None = None, *, expect_ready: bool = True) -> None:
        self.kind = kind
        self.url = url
        self.expect_ready = expect_ready
        self.env = {name: value for name, value in os.environ.items() if name != "III_TOKEN"} | (env or {})
        self.proc: asyncio.subprocess.Process | None = None
        self.invocations: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.trigger_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # what a trigger type's handler was told
        self.log: list[str] = []  # everything else the process printed, for failure messages
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count(1)
        self._ready = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SdkWorker:
        self.proc = await asyncio.create_subprocess_exec(
            *command_for(self.kind, self.url), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=HERE, env=self.env)
        self._readers.append(asyncio.create_task(self._read()))
        if not self.expect_ready:
            return self
        try:
            await asyncio.wait_for(self._ready.wait(), timeout(20))
        except TimeoutError:
            raise AssertionError(f"{self.kind} worker did not start:\n" + "\n".join(self.log)) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None and not self._ready.is_set():
            self.proc.kill()
            await self.proc.wait()
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.write(b'{"op":"exit"}\n')
            try:
                await asyncio.wait_for(self.proc.wait(), timeout(10))
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for reader in self._readers:
            reader.cancel()

    async def request(self, op: str, wait: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send one command; returns ``{"result": ...}`` or ``{"error": {"code", "message"}}``."""
        assert self.proc is not None and self.proc.stdin is not None
        ref = next(self._refs)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[ref] = future
        self.proc.stdin.write(orjson.dumps({"ref": ref, "op": op, **fields}) + b"\n")
        try:
            return await asyncio.wait_for(future, timeout(wait))
        except TimeoutError:
            raise AssertionError(f"{self.kind} worker did not answer {op}:\n" + "\n".join(self.log[-20:])) from None

    async def result(self, op: str, **fields: Any) -> Any:
        """``request`` that must succeed; returns the result."""
        answer = await self.request(op, **fields)
        assert "error" not in answer, answer
        return answer["result"]

    async def register(self, function_id: str, **behavior: Any) -> None:
        await self.result("register_function", id=function_id, behavior=behavior)

    async def trigger(self, function_id: str, payload: Any = None, **options: Any) -> dict[str, Any]:
        return await self.request("trigger", function_id=function_id, payload=payload, **options)

    async def settle(self) -> None:
        """Round-trip a call: the engine handles one connection's frames in order, so everything sent before
        (registrations are fire-and-forget in the published SDKs) has been processed when it returns."""
        await self.result("trigger", function_id="stream::list_groups", payload={"stream_name": "_"})

    async def invoked(self, wait: float = 10.0) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.invocations.get(), timeout(wait))
        except TimeoutError:
            raise AssertionError(f"{self.kind} handler not invoked:\n" + "\n".join(self.log[-20:])) from None

    async def trigger_event(self, wait: float = 10.0) -> dict[str, Any]:
        """The next binding (``register``) or removal (``unregister``) this worker's trigger type handler got."""
        try:
            return await asyncio.wait_for(self.trigger_events.get(), timeout(wait))
        except TimeoutError:
            raise AssertionError(f"{self.kind} trigger handler not called:\n" + "\n".join(self.log[-20:])) from None

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if not line.startswith("@@"):
                self.log.append(line)
                continue
            message = orjson.loads(line[2:])
            if message.get("ready"):
                self._ready.set()
            elif "invoked" in message:
                await self.invocations.put(message)
            elif "trigger_event" in message:
                await self.trigger_events.put(message)
            elif (future := self._answers.pop(message.get("ref", -1), None)) is not None and not future.done():
                future.set_result(message)
