"""Child process for the FileAdapter crash tests: reports every acknowledged write on stdout, one JSON line each.

usage: python file_store_child.py MODE DIRECTORY [COMPACT_BYTES [ITEM_PREFIX]]

* ``stream``: 50 writers set distinct items (and delete some of their own) until killed; after each acknowledged
  write prints ``["set", item, value]`` or ``["del", item, null]`` (``["deleting", item, null]`` before a delete).
* ``burst``: 500 concurrent sets, then ``["done", 500, null]`` once all are acknowledged, then sleeps until killed.
* ``efbig``: a real write failure (``RLIMIT_FSIZE``), then recovery; prints one JSON report and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import signal
import sys
from typing import Any

import orjson

from streamhub.adapters.file import FileAdapter
from streamhub.core.model import ItemRef, StreamEvent
from streamhub.errors import AdapterError

STREAM, GROUP = "s:/%ü 1", "g:*/é"
EVENTS: list[StreamEvent] = []


def ref(item: str) -> ItemRef:
    return ItemRef(STREAM, GROUP, item)


def report(*fields: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(list(fields)) + b"\n")
    sys.stdout.buffer.flush()


async def stream(adapter: FileAdapter, prefix: str) -> None:
    counter = itertools.count()

    async def writer() -> None:
        mine: list[str] = []
        while True:
            n = next(counter)
            item, value = f"{prefix}item:{n}/%", {"n": n, "pad": "x" * (n % 40)}
            await adapter.set(ref(item), value)
            report("set", item, value)
            mine.append(item)
            if n % 5 == 0:
                report("deleting", mine[0], None)  # from here the item may vanish without an acknowledgement
                await adapter.delete(ref(mine[0]))
                report("del", mine.pop(0), None)

    await asyncio.gather(*(writer() for _ in range(50)))


async def burst(adapter: FileAdapter) -> None:
    await asyncio.gather(*(adapter.set(ref(f"item:{n}"), {"n": n}) for n in range(500)))
    report("done", 500, None)
    await asyncio.sleep(3600)


async def efbig(adapter: FileAdapter, directory: str) -> None:
    result: dict[str, Any] = {}
    await adapter.set(ref("before"), 1)
    journal = max(name for name in os.listdir(directory) if name.startswith("journal-"))
    limit = os.path.getsize(os.path.join(directory, journal)) + 50
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    for name in ("big", "while_failed"):
        try:
            await adapter.set(ref(name), "y" * 1000)
            result[name] = "ok"
        except AdapterError as exc:
            result[name] = f"AdapterError temporary={exc.temporary}"
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk "recovers"
    await adapter.set(ref("after"), 2)
    result["after"] = "ok"
    result["events"] = [event.item for event in EVENTS]
    await adapter.close()
    report("efbig", result, None)


async def main(mode: str, directory: str, compact_bytes: int, prefix: str) -> None:
    adapter = FileAdapter(directory, compact_bytes=compact_bytes)
    await adapter.start(EVENTS.append)
    if mode == "stream":
        await stream(adapter, prefix)
    elif mode == "burst":
        await burst(adapter)
    else:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG as an OSError instead of a fatal signal
        await efbig(adapter, directory)


if __name__ == "__main__":
    args = sys.argv[1:] + ["67108864", ""][len(sys.argv) - 3:]
    asyncio.run(main(args[0], args[1], int(args[2]), args[3]))
