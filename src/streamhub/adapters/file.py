"""The durable embedded store (``store_method: file_based``): memory serves reads, a journal survives crashes.

Why this shape: the reference engine rewrites one file per group every 5 s without fsync, so a crash (or even a
clean stop) loses up to 5 s of acknowledged writes, and its percent-encoded file names mangle some names. Here a
write is acknowledged only once it is in the journal *and* ``fsync``ed (docs/protocol.md, Design decisions, *Durable
embedded store*). Concurrent writers share one ``write`` + ``fsync`` (group commit) done in a worker thread, so the
event loop never waits on the disk and throughput grows with the number of writers instead of being capped at one
write per fsync.

Files in ``directory``::

    LOCK                          flock()ed while open: a second process on the same directory is refused
    snapshot.dat                  the whole state as of some journal generation N (absent until the first compaction)
    journal-000000000007.log      writes after that, one file per generation >= N, replayed in order
    snapshot.tmp                  a snapshot being written (leftover of a crash; removed at start)

Every line of every file is ``<crc32 of payload as 8 hex digits> <payload as compact JSON>\\n``; orjson never emits a
raw newline, so a line is a record and the CRC proves it was written whole. Journal payloads are
``["set", stream, group, item, value]`` and ``["del", stream, group, item, null]``. A snapshot starts with
``["snapshot", 1, N, item_count]`` followed by one ``set`` line per item in first-creation order, so replaying it
rebuilds the groups with their order. Names are JSON strings inside a line, never file names, so any character
(``:``, ``/``, ``%``, unicode) is stored literally.

Crash safety (the process may be SIGKILLed at any instruction):

* Journal tail: a crash mid-append leaves a torn last line. At start, bad lines at the end of the newest journal
  (not followed by any good line) are dropped with a warning and the file is truncated to its last good line; they
  were never acknowledged. A bad line followed by a good one, or any bad line in an older journal or in the
  snapshot, is corruption: ``AdapterError`` names the file and line instead of silently dropping later data.
* Compaction: once the journal passes ``compact_bytes``, the flusher (so no append runs concurrently) copies the
  in-memory state, writes it to ``snapshot.tmp``, fsyncs it, ``os.replace``s it over ``snapshot.dat``, fsyncs the
  directory, opens journal N+1 and deletes the older journals. Killed before the replace, the old snapshot plus the
  old journals still hold everything; after it, the new snapshot does (older journals are ignored and deleted).
  The batch waiting at that moment is already in memory, so the snapshot covers it and it is acknowledged with it.
  Writes arriving meanwhile wait for the next flush; the thread yields the GIL every 256 items so the loop stays
  responsive (the copy on the loop is one ``dict.copy()`` per group).

Failure policy, two cases:

* A record that cannot be encoded (a value orjson refuses) fails only its own write: ``_prepare`` encodes the
  journal line before the base class touches memory or takes the group's next offset, so the write raises
  ``AdapterError`` with memory, offsets, events and the journal exactly as before, and every other write goes on
  (the engine refuses such values earlier anyway, ``core.values``). Memory therefore only ever holds values that
  encoded, so a snapshot of it (compaction, recovery below) can always be written.
* When a write or fsync fails (``OSError``), every writer of that batch gets ``AdapterError(temporary=True)``.
  Memory is *not* rolled back (the base class already applied the writes and other tasks may have read them); the
  adapter is flagged out of sync, and the next batch first rewrites a full snapshot of memory into a fresh journal
  generation (the compaction path). So the adapter works again as soon as the disk does; a failed write has an
  unknown outcome, like any I/O error: it stays visible, becomes durable with the next successful flush, and its
  event is not delivered.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

from streamhub.adapters.base import EventListener, GapListener, StreamAdapter
from streamhub.adapters.memory import MemoryAdapter, Record
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.positions import LogLimits
from streamhub.errors import AdapterError, DataDirError

if sys.platform != "win32":
    import fcntl

__all__ = ["FileAdapter"]

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.dat"
SNAPSHOT_TMP = "snapshot.tmp"
LOCK = "LOCK"
_FORMAT = 1
_OPS = ("set", "del")

State = list[tuple[str, str, dict[str, Any]]]
"""A copy of the groups for a snapshot: (stream, group, {item: value}) in first-creation order."""
Pending = list[tuple[bytes, asyncio.Future[None]]]
"""Encoded journal lines waiting for the flusher, each with the future its writer awaits."""


class FileAdapter(MemoryAdapter):
    """``MemoryAdapter`` whose writes are acknowledged only once fsynced to a journal in ``directory``.

    Args:
        directory: where the journal and snapshot live; created if missing. One process at a time.
        compact_bytes: journal size past which the state is snapshotted and the journal restarted.
        metrics: told of each group commit's write + fsync time and size.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        compact_bytes: int = 64 * 1024 * 1024,
        limits: LogLimits | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        super().__init__(limits)
        self._metrics = metrics
        self._dir = Path(directory)
        self._compact_bytes = compact_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the current journal, opened O_APPEND
        self._gen = 0  # its generation
        self._size = 0  # its length in bytes
        self._open = False
        self._out_of_sync = False  # memory may hold writes the disk lacks: snapshot before appending again
        self._pending: Pending = []
        self._flusher: asyncio.Task[None] | None = None
        self._io_lock = threading.Lock()  # one thread touches the files at a time, even after a cancellation

    # Lifecycle

    async def start(self, listener: EventListener, on_gap: GapListener | None = None) -> None:
        try:
            await asyncio.to_thread(self._open_dir)
        except BaseException as exc:
            await asyncio.to_thread(self._close_files)
            if isinstance(exc, OSError):  # the directory or a file in it cannot be used: say which and why
                raise _unusable(self._dir, exc) from exc
            raise
        self._open = True
        await super().start(listener, on_gap)

    async def health(self) -> str | None:
        """Why writes would fail now, or None: closed, the last write failed, or the directory is read-only."""
        if not self._open:
            return f"file store {self._dir} is not open"
        if self._out_of_sync:
            return f"file store {self._dir}: the last write failed; the next one retries"
        if not await asyncio.to_thread(os.access, self._dir, os.W_OK):
            return f"file store {self._dir} is not writable"
        return None

    async def close(self) -> None:
        self._open = False
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
        await asyncio.to_thread(self._close_files)
        await super().close()

    # Writes

    def _prepare(self, record: Record) -> bytes:
        """Encode the journal line before the base class changes memory or takes an offset (see module doc)."""
        if not self._open:
            raise AdapterError(f"file store {self._dir} is not open")
        try:
            return _line(list(record))
        except TypeError as exc:  # orjson.JSONEncodeError: this write alone is refused, nothing else is touched
            raise AdapterError(f"cannot store {'/'.join(record[1:4])}: value is not JSON ({exc})") from exc

    async def _commit(self, prepared: Any) -> None:
        line: bytes = prepared
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        await future

    # Group commit

    async def _flush_loop(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                # Copied in the same loop step the batch was taken: the copy is exactly the journal + batch
                # (+ any write that failed before), so a successful rebase brings the disk back in sync.
                healing, self._out_of_sync = self._out_of_sync, False
                rebase = healing or self._size >= self._compact_bytes
                await self._flush(batch, self._copy_state() if rebase else None, healing)
        finally:
            self._flusher = None

    async def _flush(self, batch: Pending, state: State | None, healing: bool) -> None:
        try:
            if state is not None:
                await asyncio.to_thread(self._rebase, state)
            else:
                seconds = await asyncio.to_thread(self._append, b"".join(line for line, _ in batch))
                self._metrics.fsync(seconds, len(batch))
        except BaseException as exc:
            self._out_of_sync = True
            _fail(batch, f"file store {self._dir}: write failed ({exc!r}); the outcome of this write is unknown")
            if not isinstance(exc, Exception):
                raise
            log.error("file store %s: write failed: %r", self._dir, exc)
            return
        if healing:
            log.warning("file store %s: writable again, whole state rewritten", self._dir)
        for _, future in batch:  # in record order: the base class emits events when each writer resumes
            if not future.done():
                future.set_result(None)

    def _copy_state(self) -> State:
        # dict.copy() clones the table without allocating a tuple per item: fast, and no GC pass on the loop.
        return [(stream, group, items.copy()) for (stream, group), items in self._groups.items()]

    # File work (runs in a worker thread)

    def _append(self, data: bytes) -> float:
        """Write and fsync one batch; returns the seconds both took."""
        with self._io_lock:
            if self._fd is None:
                raise OSError(f"journal {self._gen} is not open")
            started = time.perf_counter()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
            self._size += len(data)
            return time.perf_counter() - started

    def _rebase(self, state: State) -> None:
        """Write ``state`` as the snapshot, then continue in a fresh journal generation."""
        with self._io_lock:
            gen = self._gen + 1
            self._write_snapshot(state, gen)
            # From here the snapshot points past the old journal: never append to it again.
            old, self._fd, self._gen, self._size = self._fd, None, gen, 0
            if old is not None:
                os.close(old)
            self._fd = os.open(self._journal(gen), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            _fsync_dir(self._dir)
            for stale in self._journal_gens():
                if stale < gen:
                    self._journal(stale).unlink(missing_ok=True)

    def _write_snapshot(self, state: State, next_gen: int) -> None:
        tmp = self._dir / SNAPSHOT_TMP
        count = sum(len(items) for _, _, items in state)
        with open(tmp, "wb") as out:
            out.write(_line(["snapshot", _FORMAT, next_gen, count]))
            written = 0
            for stream, group, items in state:
                for item, value in items.items():
                    out.write(_line(["set", stream, group, item, value]))
                    written += 1
                    if written % 256 == 0:
                        time.sleep(0)  # hand the GIL to the event loop now rather than after the 5 ms switch interval
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._dir / SNAPSHOT)
        _fsync_dir(self._dir)

    def _open_dir(self) -> None:
        created = not self._dir.is_dir()
        self._dir.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(self._dir.parent)
        self._lock_dir()
        (self._dir / SNAPSHOT_TMP).unlink(missing_ok=True)
        self._groups.clear()  # the files are the truth (this object may be restarted after close)
        self._out_of_sync = False
        first = self._load_snapshot()
        gens = self._journal_gens()
        for stale in (gen for gen in gens if gen < first):
            self._journal(stale).unlink()
        live = [gen for gen in gens if gen >= first]
        if live != list(range(first, first + len(live))):
            raise AdapterError(f"file store {self._dir}: journals {live} should run from {first} without a gap")
        good_end = 0
        for gen in live:
            good_end = self._replay(self._journal(gen), last=gen == live[-1])
        self._gen = live[-1] if live else first
        self._fd = os.open(self._journal(self._gen), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        if self._size > good_end:  # drop the torn tail so new appends follow a good line
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)
            self._size = good_end
        _fsync_dir(self._dir)

    def _lock_dir(self) -> None:
        self._lock_fd = os.open(self._dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        if sys.platform != "win32":
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                self._lock_fd = None
                raise AdapterError(f"file store {self._dir} is already open in another process") from None

    def _load_snapshot(self) -> int:
        """Load ``snapshot.dat`` if present; return the first journal generation it does not cover."""
        path = self._dir / SNAPSHOT
        if not path.exists():
            return 1
        lines, _ = _read_lines(path, tolerate_tail=False)
        header = lines[0][1] if lines else None
        if not (
            isinstance(header, list)
            and len(header) == 4
            and header[:2] == ["snapshot", _FORMAT]
            and isinstance(header[2], int)
            and header[3] == len(lines) - 1
        ):
            raise AdapterError(f"{path}: not a complete format-{_FORMAT} snapshot (header {header!r})")
        for number, payload in lines[1:]:
            self._load(_record(payload, path, number))
        return int(header[2])

    def _replay(self, path: Path, *, last: bool) -> int:
        lines, good_end = _read_lines(path, tolerate_tail=last)
        for number, payload in lines:
            self._load(_record(payload, path, number))
        return good_end

    def _close_files(self) -> None:
        with self._io_lock:
            fd, lock_fd, self._fd, self._lock_fd = self._fd, self._lock_fd, None, None
            try:
                if fd is not None:
                    os.fsync(fd)
            except OSError as exc:
                raise AdapterError(f"file store {self._dir}: final fsync failed ({exc})") from exc
            finally:
                for each in (fd, lock_fd):  # closing the lock file releases the flock
                    if each is not None:
                        os.close(each)

    def _journal(self, gen: int) -> Path:
        return self._dir / f"journal-{gen:012d}.log"

    def _journal_gens(self) -> list[int]:
        names = (path.name for path in self._dir.glob("journal-*.log"))
        return sorted(int(name[8:-4]) for name in names if name[8:-4].isdigit())


def _unusable(directory: Path, exc: OSError) -> DataDirError:
    """One line naming the data directory and what is wrong with it (a file in the way, no permission, ...)."""
    blocker = next((path for path in (directory, *directory.parents)
                    if os.path.exists(path) and not os.path.isdir(path)), None)
    if blocker is not None:
        problem = "is a file, not a directory" if blocker == directory else f"{blocker} is a file, not a directory"
    else:
        problem = f"{exc.strerror or exc} ({exc.filename or directory})"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            problem += "; the directory must be writable by the user running streamhub"
    return DataDirError(f"data directory {directory}: {problem}")


# Encoding


def _line(payload: Any) -> bytes:
    data = orjson.dumps(payload)
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _parse(line: bytes) -> Any:
    """Return the payload of one line (newline stripped); ``ValueError`` if it does not verify."""
    if len(line) < 10 or line[8:9] != b" ":
        raise ValueError("malformed line")
    if int(line[:8], 16) != zlib.crc32(line[9:]):
        raise ValueError("checksum mismatch")
    return orjson.loads(line[9:])


def _read_lines(path: Path, *, tolerate_tail: bool) -> tuple[list[tuple[int, Any]], int]:
    """Return ``(line number, payload)`` of every good line of ``path`` and the byte offset after the last one.

    Bad lines after the last good one are a torn write: dropped with a warning if ``tolerate_tail``.
    """
    data = path.read_bytes()
    lines: list[tuple[int, Any]] = []
    good_end = pos = number = 0
    bad: tuple[int, str] | None = None  # the first bad line
    while pos < len(data):
        number += 1
        end = data.find(b"\n", pos)
        try:
            if end < 0:
                raise ValueError("no newline")
            payload = _parse(data[pos:end])
        except ValueError as exc:
            bad = bad or (number, str(exc))
        else:
            if bad is not None:
                raise _corrupt(path, *bad)
            lines.append((number, payload))
            good_end = end + 1
        pos = len(data) if end < 0 else end + 1
    if bad is not None:
        if not tolerate_tail:
            raise _corrupt(path, *bad)
        log.warning(
            "%s: ignoring %d torn bytes from line %d on (never acknowledged)", path, len(data) - good_end, bad[0]
        )
    return lines, good_end


def _record(payload: Any, path: Path, number: int) -> Record:
    if (
        isinstance(payload, list)
        and len(payload) == 5
        and payload[0] in _OPS
        and all(isinstance(name, str) for name in payload[1:4])
    ):
        return (payload[0], payload[1], payload[2], payload[3], payload[4])
    raise _corrupt(path, number, "not a set/del record")


def _corrupt(path: Path, number: int, reason: str) -> AdapterError:
    return AdapterError(
        f"{path}: line {number} is corrupt ({reason}) and is not a torn tail; "
        "refusing to load (restore the file, or truncate it knowingly)"
    )


# Helpers


def _fail(batch: Pending, message: str) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(AdapterError(message, temporary=True))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_check: type[StreamAdapter] = FileAdapter
