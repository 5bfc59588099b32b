"""``streamhub serve [-c FILE]``: load the config, run the engine until SIGINT/SIGTERM.

Exit codes: 0 after a clean stop; 2 for an unusable config (one line on stderr naming the key), an unknown
``--log-level``/``--log-format``, or an unusable data directory (``cannot start:`` naming the path and the problem);
1 when the store cannot be opened otherwise (one line on stderr, e.g. naming the unreachable Redis URL); 128 + the
signal number when SIGINT/SIGTERM arrives before the engine is ready (no traceback: nothing was acknowledged yet).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from streamhub import __version__
from streamhub.config import AdapterConfig, EngineConfig, default_config, load_config
from streamhub.errors import ConfigError, DataDirError, StreamhubError
from streamhub.heap import SurvivorFreezer
from streamhub.logs import LOG_FORMATS, configure_logging, parse_level
from streamhub.processes import check_processes, run_processes

if TYPE_CHECKING:
    from streamhub.transport.server import Server

__all__ = ["describe_store", "main", "ready_line"]

log = logging.getLogger("streamhub")

LOG_LEVEL_ENV = "STREAMHUB_LOG_LEVEL"
_PORT_LABELS = {"stream": "streams", "worker": "workers"}  # other ports print under their own name
_PORT_ORDER = ("stream", "worker", "rest")
_SLOW_START = 0.5  # seconds: a start-up longer than this says what it is waiting for (a large store loading)
SHUTDOWN_TIMEOUT = 15.0  # seconds a clean stop may take before the process leaves anyway (writes are already durable)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamhub`` command."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place (imports, config): stop quietly
        return 128 + signal.SIGINT


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        _configure_logging(args, os.environ)
    except ConfigError as exc:
        print(f"streamhub: {exc.message}", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config) if args.config else default_config()
        if args.processes != 1:
            check_processes(config, args.processes)
            return run_processes(_child_argv(args), args.processes)
        _run(config, args.config, args.reuse_port)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamhub", description="streamhub real-time data streams engine")
    parser.add_argument("--version", action="version", version=f"streamhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the engine")
    serve.add_argument("-c", "--config", help="config.yaml (default: embedded store under ./data)")
    serve.add_argument("--log-level", help=f"DEBUG, INFO (default), WARNING or ERROR; also ${LOG_LEVEL_ENV}")
    serve.add_argument("--log-format", default="text", help=f"{' or '.join(LOG_FORMATS)} (one JSON object a line)")
    serve.add_argument("--processes", type=int, default=1,
                       help="engine processes sharing each port (SO_REUSEPORT); needs the Redis adapter")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # set on --processes children
    return parser


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The ``serve`` options every child of ``--processes`` gets."""
    argv = ["--log-format", args.log_format]
    if args.config:
        argv += ["-c", args.config]
    if args.log_level:
        argv += ["--log-level", args.log_level]
    return argv


def _configure_logging(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """``--log-level`` wins over ``STREAMHUB_LOG_LEVEL``, which wins over INFO; a bad value is a ConfigError."""
    if args.log_level is not None:
        level = parse_level(args.log_level, "--log-level")
    elif environ.get(LOG_LEVEL_ENV):
        level = parse_level(environ[LOG_LEVEL_ENV], LOG_LEVEL_ENV)
    else:
        level = logging.INFO
    configure_logging(level, args.log_format)


def _run(config: EngineConfig, config_file: str | None, reuse_port: bool = False) -> None:
    try:
        import uvloop

        uvloop.run(_serve(config, config_file, reuse_port))
    except ImportError:
        asyncio.run(_serve(config, config_file, reuse_port))


def _freeze_startup_heap() -> None:
    """Move everything that exists after start-up (modules, classes, config: ~40k objects) out of the GC's reach.

    They live as long as the process, yet every full collection walked them: 13 ms of stall per collection on the
    bench machine, paid by every subscriber waiting for the event in flight.
    """
    gc.collect()
    gc.freeze()


async def _serve(config: EngineConfig, config_file: str | None, reuse_port: bool = False) -> None:
    from streamhub.transport.server import Server

    received: list[int] = []
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    server = Server(config, reuse_port=reuse_port)
    starting = asyncio.ensure_future(server.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((starting, stopping), timeout=_SLOW_START, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done() and not stop.is_set() and config.stream is not None:
        log.info("loading the store (%s); Ctrl-C stops", describe_store(config.stream.adapter))
        await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a signal while the store loads (a large file store takes a while)
        _exit_while_starting(received[0])
    stopping.cancel()
    starting.result()  # raise what start-up raised (busy port, unusable store)
    _freeze_startup_heap()
    SurvivorFreezer().install()  # and from now on what outlives a full collection, once it is many (connections)
    print(ready_line(server, config_file), flush=True)
    await stop.wait()
    log.info("shutting down")
    stop.clear()  # a second signal while closing means: leave now
    closing = asyncio.ensure_future(server.close())
    interrupted = asyncio.ensure_future(stop.wait())
    await asyncio.wait((closing, interrupted), timeout=SHUTDOWN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not closing.done():
        _exit_while_stopping(received[-1], "a second signal" if stop.is_set() else f"{SHUTDOWN_TIMEOUT:g} s")
    interrupted.cancel()
    closing.result()


def _exit_while_stopping(signum: int, why: str) -> NoReturn:
    """A shutdown that does not finish (a peer that never answers, a store that hangs) must not keep the process
    alive: every acknowledged write is already durable, so leaving is safe. Exit status 128 + the signal."""
    log.warning("shutdown did not finish (%s): exiting now", why)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def _exit_while_starting(signum: int) -> NoReturn:
    """Leave at once: the store may be loading in a thread nobody can cancel, and waiting for it (as asyncio.run
    would) keeps a Ctrl-C'd process alive for as long as the load takes. Nothing was acknowledged yet, and the
    stores survive a kill at any instruction, so there is nothing to flush but the log."""
    log.info("interrupted while starting (%s): exiting", signal.Signals(signum).name)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def ready_line(server: Server, config_file: str | None) -> str:
    """``streamhub ready: streams ws://..., workers ws://... (streamhub X; store: ...; config: ...)``.

    Tests and tools wait for the ``streamhub ready`` prefix; the rest tells a person what is running where.
    """
    names = [name for name in _PORT_ORDER if name in server.ports]
    names += sorted(name for name in server.ports if name not in _PORT_ORDER)
    ports = ", ".join(f"{_PORT_LABELS.get(name, name)} {server.url(name)}" for name in names)
    if server.config.stream is None:
        ports = f"streams (no stream module), {ports}"
    store = describe_store(server.config.stream.adapter) if server.config.stream else "memory"
    config = os.path.abspath(config_file) if config_file else "none, built-in defaults"
    return f"streamhub ready: {ports} (streamhub {__version__}; store: {store}; config: {config})"


def describe_store(adapter: AdapterConfig) -> str:
    """The store in one phrase: ``file /abs/data``, ``memory (not durable)``, ``redis redis://host:6379/0``.

    A Redis URL loses its user, password and query (which may carry a password) so the line is safe to log.
    """
    if adapter.is_redis:
        return f"redis {_without_credentials(adapter.redis_url)}"
    if adapter.store_method == "file_based":
        return f"file {os.path.abspath(adapter.file_path)}"
    return "memory (not durable)"


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:  # a port that is not a number: the adapter will say so; keep the line credential-free
        netloc = host
    return f"{parts.scheme}://{netloc}{parts.path}"
