"""What every scenario shares: the event payload, ports, per-process CPU and memory, child processes.

Every server and load generator is a separate process; the orchestrator talks to it over stdin/stdout lines and
reads its CPU and memory from ``/proc``, so the figures cost the measured process nothing.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "DATA_BYTES",
    "GENERATOR_CPU",
    "ROOT",
    "SERVER_CPU",
    "Child",
    "Usage",
    "children",
    "cpu_seconds",
    "event_json",
    "event_wrapper",
    "frame_length",
    "free_port",
    "machine_busy_seconds",
    "rss_bytes",
    "text_frame",
    "unpin",
]

ROOT = Path(__file__).resolve().parent.parent
DATA_BYTES = 64  # every event carries a string of this many characters, in every system under test


def event_wrapper(index: int, kind: str = "create") -> dict[str, Any]:
    """The client-protocol event for item ``index``: the one payload every system delivers.

    Item ids are zero-padded and the timestamp has 13 digits, so every event frame has the same size and the
    subscribers can count bytes instead of parsing frames.
    """
    return {
        "type": "stream",
        "timestamp": 1_764_370_000_123,
        "streamName": "bench",
        "groupId": "g",
        "id": f"{index:08d}",
        "event": {"type": kind, "data": "x" * DATA_BYTES},
    }


def event_json(index: int) -> bytes:
    """``event_wrapper(index)`` encoded once, as the servers send it."""
    return orjson.dumps(event_wrapper(index))


def text_frame(payload: bytes, mask: bool = False) -> bytes:
    """One WebSocket text frame; clients must mask (an all-zero key keeps the payload as is)."""
    size = len(payload)
    flag = 0x80 if mask else 0
    if size < 126:
        header = bytes((0x81, flag | size))
    elif size < 65536:
        header = bytes((0x81, flag | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, flag | 127)) + size.to_bytes(8, "big")
    return header + (b"\0\0\0\0" if mask else b"") + payload


def frame_length(head: bytes) -> int | None:
    """Total size of the unmasked frame starting ``head``, or None until enough of its header is there."""
    if len(head) < 2:
        return None
    size = head[1] & 0x7F
    if size < 126:
        return 2 + size
    if size == 126:
        return 4 + int.from_bytes(head[2:4], "big") if len(head) >= 4 else None
    return 10 + int.from_bytes(head[2:10], "big") if len(head) >= 10 else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user plus system, every thread) that process ``pid`` has used so far.

    Read from the scheduler's per-thread nanosecond counters: ``/proc/PID/stat`` counts 10 ms ticks, too coarse
    for short runs.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


def children(pid: int) -> list[int]:
    """The direct children of process ``pid`` (every thread's list: a child is listed under its forking thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(v) for v in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return sorted(set(found))


def unpin(pid: int) -> None:
    """Let every thread of process ``pid`` run on every core (children inherit the orchestrator's core 1)."""
    cores = set(range(os.cpu_count() or 1))
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cores)
        except (OSError, ValueError):
            continue  # the thread ended meanwhile


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (not idle, not waiting for I/O) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Usage:
    """CPU used during a run by the server, the generator, this process, and everyone else on the machine.

    ``others`` (in cores) shows when another tenant's work shared the cores with the run: its figures are then
    noisier, and the same round's other systems are the ones to compare with.
    """

    def __init__(self, server: int, generator: int) -> None:
        self._pids = (server, generator)
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float, float]:
        return (time.monotonic(), cpu_seconds(self._pids[0]), cpu_seconds(self._pids[1]), time.process_time(),
                machine_busy_seconds())

    def stop(self) -> dict[str, float]:
        """Seconds of wall time and CPU per party since construction."""
        end = self._sample()
        wall, server, generator, own, machine = (b - a for a, b in zip(self._start, end, strict=True))
        return {"wall": wall, "server": server, "generator": generator,
                "others": max(0.0, machine - server - generator - own)}


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


SERVER_CPU = 0  # servers run on this core, load generators on the other: they never steal each other's slices
GENERATOR_CPU = 1


class Child:
    """A child process driven by lines: it prints lines we wait for; we write command lines to its stdin.

    ``cpu`` pins the process to one core (skipped on a machine with fewer).

    Every wait is bounded: a child that does not answer in time is an error naming the child and what was awaited.
    """

    def __init__(self, name: str, argv: list[str], cwd: Path = ROOT, cpu: int | None = None) -> None:
        self.name = name
        self._buffer = b""  # stdout read but not yet returned as lines
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        )
        if cpu is not None and cpu < (os.cpu_count() or 1):
            os.sched_setaffinity(self.proc.pid, {cpu})

    @classmethod
    def python(cls, name: str, module: str, *args: object, cpu: int | None = None) -> Child:
        """Run ``python -m module args...`` with this interpreter."""
        return cls(name, [sys.executable, "-m", module, *(str(a) for a in args)], cpu=cpu)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, prefix: str, timeout: float) -> str:
        """Wait for the next stdout line; it must start with ``prefix``. Returns the rest of the line."""
        line = self._readline(time.monotonic() + timeout)
        if line is None:
            raise RuntimeError(f"{self.name}: no {prefix!r} line within {timeout:.0f} s (exit {self.proc.poll()})")
        if not line.startswith(prefix):
            raise RuntimeError(f"{self.name}: expected {prefix!r}, got {line.strip()!r}")
        return line[len(prefix):].strip()

    def send(self, line: str) -> None:
        """Write one command line to the child."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")

    def stop(self) -> None:
        """Terminate the child (kill it if it does not exit within 5 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def _readline(self, deadline: float) -> str | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
