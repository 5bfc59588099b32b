"""``streamhub serve`` logs: level and format options, what INFO and DEBUG say, and the ready line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson

from streamhub import __version__
from streamhub.cli import describe_store
from streamhub.config import REDIS_ADAPTER, AdapterConfig
from streamhub.logs import JsonFormatter
from tests.helpers import Subscriber, TestWorker, free_port, timeout

_STORE = "{class: modules::stream::adapters::KvStore, config: {store_method: file_based, file_path: ./store}}"


def _serve_args(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamhub", "serve", *extra], capture_output=True, text=True,
                          timeout=timeout(30), env={**os.environ, **(env or {})})


def test_unknown_log_level_or_format_is_one_line_and_exit_2() -> None:
    for args, env, named in ((["--log-level", "verbose"], {}, "--log-level"),
                             ([], {"STREAMHUB_LOG_LEVEL": "loud"}, "STREAMHUB_LOG_LEVEL"),
                             (["--log-format", "xml"], {}, "--log-format")):
        result = _serve_args(*args, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and result.stdout == ""
        assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "DEBUG, INFO, WARNING, ERROR" in _serve_args("--log-level", "verbose").stderr


async def _engine(tmp_path: Path, *args: str, env: dict[str, str] | None = None
                  ) -> tuple[asyncio.subprocess.Process, str, int, int]:
    worker, stream = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"port: {worker}\nworker_auth: {{tokens: [s3cret]}}\nmodules:\n"
                      f"  - class: modules::stream::StreamModule\n    config: {{port: {stream}, adapter: {_STORE}}}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamhub", "serve", "-c", "config.yaml", *args, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    ready = (await asyncio.wait_for(proc.stdout.readline(), timeout(20))).decode().strip()
    return proc, ready, worker, stream


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    assert proc.returncode == 0
    return err.decode()


async def _workload(worker_port: int, stream_port: int) -> None:
    """A refused worker, a worker with two functions, a client that joins and leaves."""
    refused = TestWorker(f"ws://127.0.0.1:{worker_port}/")
    try:
        await refused.__aenter__()
        raise AssertionError("a worker without the token got in")
    except Exception as exc:  # aiohttp's handshake error for the 401
        assert "401" in str(exc)
    finally:
        await refused.close()
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer s3cret"}) as session:
        ws = await session.ws_connect(f"ws://127.0.0.1:{worker_port}/")
        await ws.receive()  # workerregistered
        for name in ("todo::add", "todo::remove"):
            await ws.send_bytes(orjson.dumps({"type": "registerfunction", "id": name}))
        async with Subscriber(f"ws://127.0.0.1:{stream_port}/") as client:
            sub = await client.join("todos", "inbox")
            assert (await client.next())["event"]["type"] == "sync"
            await client.leave("todos", "inbox", sub)
            await asyncio.sleep(0.2)
        await ws.close()
    await asyncio.sleep(0.2)


async def test_json_lines_at_debug_say_who_connected_joined_left_and_was_refused(tmp_path: Path) -> None:
    proc, ready, worker, stream = await _engine(tmp_path, "--log-format", "json", "--log-level", "debug")
    try:
        await _workload(worker, stream)
    finally:
        err = await _stop(proc)
    records = [orjson.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    assert all(r["time"].endswith("+00:00") and "T" in r["time"] for r in records)
    said = [(r["level"], r["message"]) for r in records]

    def has(level: str, *words: str) -> bool:
        return any(lv == level and all(w in msg for w in words) for lv, msg in said)

    assert has("INFO", "worker connection from", "refused"), said
    assert has("INFO", "worker", "connected from 127.0.0.1")
    assert has("INFO", "registered function todo::add")
    assert has("INFO", "disconnected", "2 functions removed", "todo::add", "todo::remove")
    assert has("DEBUG", "client", "connected from 127.0.0.1")
    assert has("DEBUG", "joined todos/inbox")
    assert has("DEBUG", "left todos/inbox")
    assert has("DEBUG", "client", "disconnected")
    assert ready == (f"streamhub ready: streams ws://127.0.0.1:{stream}, workers ws://127.0.0.1:{worker} "
                     f"(streamhub {__version__}; store: file {tmp_path / 'store'}; config: {tmp_path / 'config.yaml'})")


async def test_text_format_and_level_from_the_environment(tmp_path: Path) -> None:
    proc, _, worker, stream = await _engine(tmp_path, env={"STREAMHUB_LOG_LEVEL": "warning"})
    try:
        await _workload(worker, stream)
    finally:
        err = await _stop(proc)
    assert err.strip() == ""  # everything the workload logs is INFO or DEBUG
    proc, _, worker, stream = await _engine(tmp_path, "--log-level", "INFO", env={"STREAMHUB_LOG_LEVEL": "error"})
    try:
        await _workload(worker, stream)
    finally:
        err = await _stop(proc)
    lines = err.splitlines()
    assert any(" INFO streamhub.transport.worker_ws: worker " in line and "connected from" in line for line in lines)
    assert not any(" DEBUG " in line for line in lines), lines  # the flag wins over the environment


def test_json_formatter_carries_the_exception_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("streamhub.x", logging.ERROR, __file__, 1, "call of %s failed", ("f",),
                                   sys.exc_info())
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["message"] == "call of f failed" and entry["level"] == "ERROR" and entry["logger"] == "streamhub.x"
    assert entry["exception"].startswith("Traceback") and "ValueError: boom" in entry["exception"]


def test_store_description_hides_redis_credentials(tmp_path: Path) -> None:
    redis = AdapterConfig(REDIS_ADAPTER, redis_url="redis://user:pa55@cache.local:6380/2?password=x")
    assert describe_store(redis) == "redis redis://cache.local:6380/2"
    assert describe_store(AdapterConfig()) == "memory (not durable)"
    assert describe_store(AdapterConfig(store_method="file_based", file_path="rel")) == f"file {os.path.abspath('rel')}"
