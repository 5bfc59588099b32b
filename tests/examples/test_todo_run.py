"""examples/todo/run.py, the README's one command, as a user runs it: engine, worker and page server come up on
the ports the environment gives, answer, and all stop together on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.helpers import free_port, timeout

RUN_PY = Path(__file__).resolve().parents[2] / "examples" / "todo" / "run.py"


async def test_run_py_starts_and_stops_the_whole_app(tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("WORKER_PORT", "STREAM_PORT", "API_PORT", "PAGE_PORT")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(RUN_PY), env={**os.environ, **ports, "TODO_DATA": str(tmp_path / "data")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(timeout(20)):
            while not (line := (await proc.stdout.readline()).decode()).startswith("todo app ready"):
                assert line, "".join(output)
                output.append(line)
        page = f"http://127.0.0.1:{ports['PAGE_PORT']}"
        assert line.strip() == f"todo app ready: open {page}/"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{page}/") as response:
                assert response.status == 200 and "<title>streamhub todos</title>" in await response.text()
            async with http.get(f"{page}/config.json") as response:
                assert await response.json() == {
                    "stream": f"ws://127.0.0.1:{ports['STREAM_PORT']}",
                    "client": f"http://127.0.0.1:{ports['STREAM_PORT']}/client.js",
                    "api": f"http://127.0.0.1:{ports['API_PORT']}"}
            api = f"http://127.0.0.1:{ports['API_PORT']}/todos"
            async with http.post(api, json={"userId": "u1", "title": "milk"}) as response:
                assert response.status == 201 and len((await response.json())["id"]) == 12
            async with http.post(api, json={"userId": "u1"}) as response:
                assert (response.status, await response.json()) == (
                    400, {"error": "body.title is required (a non-empty string)"})
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stdout.read(), timeout(20))
        assert await proc.wait() == 0
    log = rest.decode()
    assert "[worker] todo create u1/" in log, log
    assert "[worker] exited with code 0" in log and "[engine] exited with code 0" in log, log
