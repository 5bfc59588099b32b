"""The ``streamhub`` command: config errors, busy ports, graceful stop, and durability across kill -9."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import orjson
import pytest

from tests.helpers import TestWorker, free_port, timeout
from tests.process import EngineProcess


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamhub", "serve", "-c", str(config)],
                          capture_output=True, text=True, timeout=timeout(30))


def test_bad_config_exits_non_zero_with_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("modules:\n  - class: modules::stream::StreamModule\n    config:\n      port: abc\n")
    result = _serve(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "modules[0].config.port" in lines[0] and "abc" in lines[0]
    config.write_text("modules:\n  - class: modules::stream::Nope\n")
    result = _serve(config)
    assert result.returncode == 2 and "modules[0].class" in result.stderr and "Nope" in result.stderr
    config.write_text("modlues:\n  - class: modules::stream::StreamModule\n")
    result = _serve(config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert 'modlues: unknown key; did you mean "modules"?' in result.stderr


def test_port_in_use_exits_non_zero_naming_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f"port: {free_port()}\nmodules:\n  - class: modules::stream::StreamModule\n"
                          f"    config:\n      port: {port}\n")
        result = _serve(config)
    assert result.returncode == 2
    assert str(port) in result.stderr and "port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path)
    await engine.start()
    async with TestWorker(engine.worker_url) as worker:
        await asyncio.gather(*(
            worker.call("stream.set", {"stream_name": "todos", "group_id": f"user:{i % 5}", "item_id": f"t{i}",
                                       "data": {"n": i}}) for i in range(200)))
        op = {"stream_name": "counters", "group_id": "g", "item_id": "c",
              "ops": [{"type": "increment", "path": "n", "by": 1}]}
        await asyncio.gather(*(worker.call("stream.update", op) for _ in range(100)))
        await worker.call("stream.delete", {"stream_name": "todos", "group_id": "user:0", "item_id": "t0"})
    engine.kill()
    assert await engine.stop() == -9
    await engine.start()
    try:
        async with TestWorker(engine.worker_url) as worker:
            items = [v for g in range(5)
                     for v in await worker.call("stream.list", {"stream_name": "todos", "group_id": f"user:{g}"})]
            assert sorted(v["n"] for v in items) == list(range(1, 200))
            counter = await worker.call("stream.get", {"stream_name": "counters", "group_id": "g", "item_id": "c"})
            assert counter == {"n": 100}
            assert sorted(await worker.call("stream.list_groups", {"stream_name": "todos"})) == [
                f"user:{g}" for g in range(5)]
    finally:
        assert await engine.stop() == 0


def _large_journal(directory: Path, items: int) -> None:
    """A file store whose load takes seconds: ``items`` sets in one journal, in the store's line format."""
    directory.mkdir()
    with open(directory / "journal-000000000001.log", "wb") as out:
        for i in range(items):
            payload = orjson.dumps(["set", "todos", f"g{i % 100}", f"item{i}", {"title": "x" * 40, "n": i}])
            out.write(b"%08x %s\n" % (zlib.crc32(payload), payload))


def test_ctrl_c_while_a_large_store_loads_exits_at_once_without_a_traceback(tmp_path: Path) -> None:
    _large_journal(tmp_path / "data", 300_000)  # about 2 s to load on an idle machine
    config = tmp_path / "config.yaml"  # the defaults' store (./data), on free ports
    config.write_text(f"port: {free_port()}\nmodules:\n  - class: modules::stream::StreamModule\n"
                      f"    config: {{port: {free_port()}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "streamhub", "serve", "-c", str(config)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    try:
        line = proc.stderr.readline()
        assert f"loading the store (file {tmp_path / 'data'})" in line, line  # start-up is in the load
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout(20)) == 130
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    err = proc.stderr.read()
    assert proc.stdout.read() == ""  # never got ready
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted while starting (SIGINT)" in err
    assert took < 1.0, took  # did not wait for the load to finish


_HANGING_STOP = """
import asyncio, sys
import streamhub.cli as cli
from streamhub.transport.server import Server

async def hang(self):  # the fault: a close step that never returns (it cannot be caused on demand for real)
    await asyncio.Event().wait()

Server.close = hang
cli.SHUTDOWN_TIMEOUT = float(sys.argv[1])
sys.exit(cli.main(["serve", "-c", sys.argv[2]]))
"""


@pytest.mark.parametrize(("second_signal", "shutdown_timeout"), [(True, 30.0), (False, 1.0)])
def test_a_stop_that_hangs_is_cut_short(tmp_path: Path, second_signal: bool, shutdown_timeout: float) -> None:
    """A stop that does not finish must not keep the process alive: a second signal, or SHUTDOWN_TIMEOUT, ends it."""
    config = tmp_path / "config.yaml"
    config.write_text(f"port: {free_port()}\nmodules:\n  - class: modules::stream::StreamModule\n"
                      f"    config: {{port: {free_port()}}}\n")
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_STOP, str(shutdown_timeout), str(config)], cwd=tmp_path,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline().startswith("streamhub ready")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None  # the stop hangs
        sent = time.monotonic()
        if second_signal:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout(10))
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    err = proc.stderr.read()
    assert code == 128 + (signal.SIGINT if second_signal else signal.SIGTERM)
    why = "a second signal" if second_signal else "1 s"
    assert f"shutdown did not finish ({why}): exiting now" in err, err
    assert "Traceback" not in err
    assert took < (1.5 if second_signal else shutdown_timeout + 1.5), took
