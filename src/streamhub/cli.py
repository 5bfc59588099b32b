"""``streamhub serve [-c FILE]``: load the config, run the engine until SIGINT/SIGTERM.

Exit codes: 0 after a clean stop; 2 for an unusable config (one line on stderr naming the key) or data directory
(``cannot start:`` naming the path and the problem); 1 when the store cannot be opened otherwise (one line on
stderr, e.g. naming the unreachable Redis URL).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from streamhub import __version__
from streamhub.config import EngineConfig, default_config, load_config
from streamhub.errors import ConfigError, DataDirError, StreamhubError

__all__ = ["main"]

log = logging.getLogger("streamhub")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamhub`` command."""
    parser = argparse.ArgumentParser(prog="streamhub", description="streamhub real-time data streams engine")
    parser.add_argument("--version", action="version", version=f"streamhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the engine")
    serve.add_argument("-c", "--config", help="config.yaml (default: embedded store under ./data)")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config) if args.config else default_config()
        _run(config)
    except ConfigError as exc:
        print(f"streamhub: config error: {exc.message}", file=sys.stderr)
        return 2
    except DataDirError as exc:
        print(f"streamhub: cannot start: {exc.message}", file=sys.stderr)
        return 2
    except StreamhubError as exc:
        print(f"streamhub: cannot start: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _run(config: EngineConfig) -> None:
    try:
        import uvloop

        uvloop.run(_serve(config))
    except ImportError:
        asyncio.run(_serve(config))


def _freeze_startup_heap() -> None:
    """Move everything that exists after start-up (modules, classes, config: ~40k objects) out of the GC's reach.

    They live as long as the process, yet every full collection walked them: 13 ms of stall per collection on the
    bench machine, paid by every subscriber waiting for the event in flight.
    """
    gc.collect()
    gc.freeze()


async def _serve(config: EngineConfig) -> None:
    from streamhub.transport.server import Server

    server = Server(config)
    await server.start()
    _freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    streams = server.url("stream") if config.stream else "(no stream module)"
    rest = f", rest {server.url('rest')}" if config.rest_api else ""
    print(f"streamhub ready: streams {streams}, workers {server.url('worker')}{rest}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await server.close()
