"""Binds the engine's ports: the worker port always, the stream port when the stream module is configured.

A port that cannot be bound stops start-up with a ``ConfigError`` naming the config key, so the CLI can print
one clear line.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

from aiohttp import web

from streamhub.adapters.base import StreamAdapter
from streamhub.adapters.registry import build_adapter, build_cluster, build_presence, memory_adapter
from streamhub.config import (
    ADMIN_MODULE,
    REST_API_MODULE,
    STREAM_MODULE,
    AdminConfig,
    EngineConfig,
    RestApiConfig,
    StreamModuleConfig,
    TlsConfig,
)
from streamhub.core.metrics import NULL_METRICS, Metrics
from streamhub.core.values import DEFAULT_MAX_DEPTH
from streamhub.engine.engine import Engine
from streamhub.engine.metrics import EngineMetrics
from streamhub.errors import ConfigError
from streamhub.transport.access import BearerTokens, is_loopback, tls_context
from streamhub.transport.admin import AdminModule
from streamhub.transport.client_ws import ClientEndpoint, ClientEndpointSettings
from streamhub.transport.http_api import RestApi, RestApiSettings
from streamhub.transport.limits import ConnectionGuard, port_limits, raise_open_files_limit, serve_app
from streamhub.transport.worker_ws import WorkerEndpoint

__all__ = ["Server"]

log = logging.getLogger(__name__)


class Server:
    """An engine plus its listening sockets.

    Args:
        config: the validated configuration.
        adapter: overrides the adapter the config names (tests use this).
        metrics: the observability seam every part of this engine reports to; by default it counts when the
            admin module is configured (it exports the counts) and is a no-op otherwise.
        reuse_port: listen with ``SO_REUSEPORT`` (``serve --processes N``: N engines share each port).
    """

    def __init__(self, config: EngineConfig, adapter: StreamAdapter | None = None,
                 metrics: Metrics | None = None, *, reuse_port: bool = False) -> None:
        self.config = config
        self.reuse_port = reuse_port
        stream = config.stream
        if metrics is None:
            metrics = EngineMetrics() if config.admin is not None else NULL_METRICS
        presence = cluster = None
        if adapter is None:
            adapter = build_adapter(stream.adapter, metrics) if stream is not None else memory_adapter()
            if stream is not None:
                presence = build_presence(stream.adapter, stream.presence_ttl_ms / 1000, adapter)
                cluster = build_cluster(stream.adapter, adapter)
        self.engine = Engine(
            adapter,
            invocation_timeout=config.invocation_timeout_ms / 1000,
            join_timeout=(stream.join_timeout_ms / 1000) if stream else 10.0,
            max_value_depth=stream.max_value_depth if stream else DEFAULT_MAX_DEPTH,
            metrics=metrics,
            presence=presence,
            max_presence_members=stream.max_presence_members if stream else 1000,
            max_presence_info_bytes=stream.max_presence_info_bytes if stream else 1024,
            cluster=cluster,
            cluster_lease=stream.cluster_lease_ms / 1000 if stream else 5.0,
        )
        tokens = BearerTokens(config.worker_auth.tokens) if config.worker_auth is not None else None
        self.workers = WorkerEndpoint(self.engine, tokens)
        self.clients: ClientEndpoint | None = None
        if stream is not None:
            self.clients = ClientEndpoint(
                self.engine,
                ClientEndpointSettings(
                    auth_function=stream.auth_function,
                    auth_timeout=stream.auth_timeout_ms / 1000,
                    max_message_size=stream.max_message_size,
                    max_pending_bytes=stream.max_pending_bytes,
                    heartbeat=stream.heartbeat_ms / 1000 if stream.heartbeat_ms else None,
                    max_subscriptions=stream.max_subscriptions_per_connection,
                    allowed_origins=stream.allowed_origins,
                ),
            )
        self.rest: RestApi | None = None
        if config.rest_api is not None:
            rest = config.rest_api
            self.rest = RestApi(
                self.engine,
                RestApiSettings(
                    timeout=rest.default_timeout_ms / 1000,
                    concurrency=rest.concurrency_request_limit,
                    cors_origins=rest.cors_allowed_origins,
                    cors_methods=rest.cors_allowed_methods,
                    body_timeout=rest.body_timeout_ms / 1000,
                ),
            )
        self.admin: AdminModule | None = None
        if config.admin is not None:
            counts = metrics if isinstance(metrics, EngineMetrics) else EngineMetrics()
            self.admin = AdminModule(self, config.admin, counts)
        self._runners: list[web.AppRunner] = []
        self._limits = port_limits(config)
        self.guards: dict[str, ConnectionGuard] = {}  # each port's connection count and header timer
        self.ports: dict[str, int] = {}  # actual bound ports (differ from the config when it asks for port 0)

    @property
    def worker_port(self) -> int:
        return self.ports.get("worker", 0)

    @property
    def stream_port(self) -> int:
        return self.ports.get("stream", 0)

    @property
    def rest_port(self) -> int:
        return self.ports.get("rest", 0)

    @property
    def admin_port(self) -> int:
        return self.ports.get("admin", 0)

    def session_counts(self) -> dict[str, int]:
        """Open WebSocket sessions per port (for metrics and the console)."""
        clients = len(self.clients.connections) if self.clients is not None else 0
        return {"stream": clients, "worker": len(self.workers.connections)}

    def backlogs(self) -> dict[str, int]:
        """Bytes queued to each port's connections and not yet read (walks every connection: scrape time only)."""
        clients = self.clients.connections.values() if self.clients is not None else ()
        return {"stream": sum(conn.outbox.backlog for conn in clients),
                "worker": sum(worker.backlog for worker in self.workers.connections.values())}

    def worker_ids(self) -> list[str]:
        return list(self.workers.connections)

    def worker_descriptions(self) -> dict[str, dict[str, Any]]:
        """What each worker said about itself in ``engine::workers::register``."""
        return dict(self.engine.workers.descriptions)

    async def start(self) -> None:
        """Bind every port, start the engine, raise the open-files limit, serve; ``ConfigError`` if a port is taken.

        Ports are bound before the store is opened so a busy port fails fast and touches no data; TLS files are
        read before that.
        """
        contexts = self._tls_contexts()
        listeners: list[tuple[str, list[web.RouteDef], socket.socket]] = []
        try:
            for name, routes, host, port, key in self._endpoints():
                listeners.append((name, routes, _listen(host, port, key, self.reuse_port)))
        except ConfigError:
            for _, _, sock in listeners:
                sock.close()
            raise
        try:
            await self.engine.start()
        except BaseException:
            for _, _, sock in listeners:
                sock.close()
            raise
        raise_open_files_limit(sum(limits.max_connections for limits in self._limits.values()))
        try:
            for name, routes, sock in listeners:
                self.ports[name] = await self._serve(name, routes, sock, contexts.get(name))
        except BaseException:
            await self.close()
            raise
        self._warn_if_workers_exposed(next(sock for name, _, sock in listeners if name == "worker"))

    def _endpoints(self) -> list[tuple[str, list[web.RouteDef], str, int, str]]:
        config = self.config
        endpoints = [("worker", self.workers.routes(), config.host, config.port, "port")]
        if config.stream is not None and self.clients is not None:
            endpoints.append(
                (
                    "stream",
                    self.clients.routes(),
                    config.stream.host,
                    config.stream.port,
                    f"{STREAM_MODULE} config.port",
                )
            )
        if config.rest_api is not None and self.rest is not None:
            endpoints.append(
                (
                    "rest",
                    self.rest.routes(),
                    config.rest_api.host,
                    config.rest_api.port,
                    f"{REST_API_MODULE} config.port",
                )
            )
        if config.admin is not None and self.admin is not None:
            endpoints.append(("admin", self.admin.routes(), config.admin.host, config.admin.port,
                              f"{ADMIN_MODULE} config.port"))
        return endpoints

    def url(self, name: str) -> str:
        """How to reach a bound port (``worker``, ``stream``, ``rest``, ``admin``): ``wss://``/``https://`` with TLS."""
        config = self.config
        module = {"worker": config, "stream": config.stream, "rest": config.rest_api, "admin": config.admin}[name]
        host = module.host if module is not None else ""
        host = f"[{host}]" if ":" in host else host
        scheme = "http" if name in ("rest", "admin") else "ws"
        secure = module is not None and module.tls is not None
        return f"{scheme}{'s' if secure else ''}://{host}:{self.ports.get(name, 0)}"

    def _tls_contexts(self) -> dict[str, ssl.SSLContext]:
        """One SSL context per port that has ``tls``; a bad file raises ConfigError naming its key."""
        configured = {"worker": self.config.tls, "stream": _tls_of(self.config.stream),
                      "rest": _tls_of(self.config.rest_api), "admin": _tls_of(self.config.admin)}
        return {name: tls_context(tls) for name, tls in configured.items() if tls is not None}

    def _warn_if_workers_exposed(self, sock: socket.socket) -> None:
        """Anyone who reaches an open worker port can register and call every function: say so at start."""
        address = str(sock.getsockname()[0])
        if self.config.worker_auth is None and not is_loopback(address):
            log.warning("the worker port listens on %s:%d without authentication: anyone who reaches it can "
                        "register and call every function. Set worker_auth: {tokens: [\"${STREAMHUB_WORKER_TOKEN}\"]} "
                        "(workers send Authorization: Bearer <token>; iii SDKs: III_TOKEN), or host: 127.0.0.1",
                        address, self.worker_port)

    async def close(self) -> None:
        """Close sockets (clients, then workers, see 1001), then the engine (flushing the store)."""
        if self.clients is not None:
            await self.clients.close_all()
        await self.workers.close_all()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.engine.close()

    async def _serve(self, name: str, routes: list[web.RouteDef], sock: socket.socket,
                     ssl_context: ssl.SSLContext | None = None) -> int:
        app = web.Application()
        app.add_routes(routes)
        runner, self.guards[name] = await serve_app(app, sock, self._limits[name],  # limits.py: 503, 408
                                                    ssl_context=ssl_context)
        self._runners.append(runner)
        bound: int = sock.getsockname()[1]
        return bound


def _listen(host: str, port: int, key: str, reuse_port: bool = False) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"{key}: cannot resolve host {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # the kernel spreads connections over every process listening on the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{key}: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _tls_of(module: StreamModuleConfig | RestApiConfig | AdminConfig | None) -> TlsConfig | None:
    return module.tls if module is not None else None

