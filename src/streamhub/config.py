"""Load and validate ``config.yaml`` (the iii engine's format of March 2026, see docs/protocol.md).

A bad config must stop start-up with one line that names the key and the problem, because a server that
starts with a typo'd key silently ignored (a stream port nobody listens on, auth that never runs) is worse
than one that refuses to start. Everything here therefore raises :class:`~streamhub.errors.ConfigError`
and returns frozen dataclasses the engine can trust without checking again.

Where streamhub is stricter than the reference: unknown keys at the top level and in module and adapter configs,
a file without the stream module, an unknown ``store_method``, a module class streamhub does not run, a ``${VAR}``
whose variable is unset, and duplicate YAML keys are all errors instead of being ignored, defaulted or panicking.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Literal, cast

from streamhub.config_yaml import Section, expand_env, parse_yaml, show
from streamhub.errors import ConfigError

__all__ = [
    "ADMIN_MODULE",
    "KV_STORE",
    "REDIS_ADAPTER",
    "REST_API_MODULE",
    "STREAM_MODULE",
    "AdapterConfig",
    "AdminConfig",
    "EngineConfig",
    "RestApiConfig",
    "StoreMethod",
    "StreamModuleConfig",
    "TlsConfig",
    "WorkerAuthConfig",
    "default_config",
    "expand_env",
    "load_config",
]

STREAM_MODULE = "modules::stream::StreamModule"
REST_API_MODULE = "modules::api::RestApiModule"
ADMIN_MODULE = "modules::admin::AdminModule"
KV_STORE = "modules::stream::adapters::KvStore"
REDIS_ADAPTER = "modules::stream::adapters::RedisAdapter"

# Reference classes a user may copy from an iii config; streamhub names them so the error says
# "not supported" (the module will not run) rather than "unknown" (a typo).
_UNSUPPORTED_MODULES = frozenset(
    f"modules::{name}"
    for name in """state::StateModule queue::QueueModule pubsub::PubSubModule cron::CronModule
    kv_server::KvServer observability::OtelModule shell::ExecModule worker::WorkerModule
    telemetry::TelemetryModule bridge_client::BridgeClientModule
    http_functions::HttpFunctionsModule""".split()
)
_UNSUPPORTED_ADAPTERS = frozenset({"modules::stream::adapters::Bridge"})

StoreMethod = Literal["in_memory", "file_based"]
_STORE_METHODS: tuple[StoreMethod, ...] = ("in_memory", "file_based")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
_MIB = 1024 * 1024
_MAX_VALUE_DEPTH = 200  # orjson refuses to encode past 255 levels, and stores wrap a value in a few more


@dataclass(frozen=True)
class AdapterConfig:
    """The stream store. Fields that do not belong to ``class_name`` keep their defaults and are unused.

    ``store_method``/``file_path`` apply to :data:`KV_STORE` (``file_path`` is a directory);
    ``redis_url``/``key_prefix``/``durable_replicas`` apply to :data:`REDIS_ADAPTER` (a ``redis+cluster://``
    URL names any one node of a Redis Cluster). Both keep a change log per group for resuming clients: at most
    ``change_log_size`` events, none older than ``change_log_age_ms``.
    """

    class_name: str = KV_STORE
    store_method: StoreMethod = "in_memory"
    file_path: str = "./data"
    redis_url: str = "redis://localhost:6379"
    key_prefix: str = "streamhub:"
    change_log_size: int = 1000
    change_log_age_ms: int = 300_000
    durable_replicas: int = 0
    """Replicas that must hold a write before it is acknowledged (Redis ``WAIT``); 0 = the primary alone."""

    @property
    def is_cluster(self) -> bool:
        """True when the store is a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
        return self.is_redis and self.redis_url.startswith(_CLUSTER_SCHEMES)

    @property
    def is_redis(self) -> bool:
        """True when the store is Redis (the only other choice is the embedded KvStore)."""
        return self.class_name == REDIS_ADAPTER


@dataclass(frozen=True)
class TlsConfig:
    """``tls: {cert_file, key_file}`` on a port: serve it as wss:// / https:// with this PEM pair."""

    cert_file: str
    key_file: str
    key: str = field(default="tls", compare=False)  # where it sits in config.yaml, for error messages


@dataclass(frozen=True)
class WorkerAuthConfig:
    """Top-level ``worker_auth``: an upgrade on the worker port must carry ``Authorization: Bearer <token>``."""

    tokens: tuple[str, ...]


@dataclass(frozen=True)
class StreamModuleConfig:
    """``modules::stream::StreamModule``: the client WebSocket port and its store.

    The limits exist so one client cannot exhaust the server: frames above ``max_message_size`` bytes close
    the socket with 1009, and a client whose unsent output passes ``max_pending_bytes`` is disconnected.
    docs/security.md lists every limit and what it protects.
    """

    port: int = 3112
    host: str = "127.0.0.1"
    auth_function: str | None = None
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    max_message_size: int = _MIB
    max_pending_bytes: int = 4 * _MIB
    join_timeout_ms: int = 10_000
    auth_timeout_ms: int = 10_000
    heartbeat_ms: int = 30_000  # server pings; a client silent for half of this after a ping is dropped (0: off)
    handshake_timeout_ms: int = 10_000  # a connection must finish its upgrade request's headers within this
    max_connections: int = 100_000  # open sockets on the stream port; excess upgrades are answered 503
    max_subscriptions_per_connection: int = 1000
    max_value_depth: int = 64  # nesting limit of every value entering the store (set, update, send, http)
    allowed_origins: tuple[str, ...] = ()  # empty: any Origin (and clients that send none)
    tls: TlsConfig | None = None
    presence_ttl_ms: int = 15_000  # Redis: an engine's members outlive it (kill -9) by at most this lease
    cluster_lease_ms: int = 5_000  # Redis: an engine's functions and triggers outlive it (kill -9) by at most this
    max_presence_members: int = 1000  # members listed per group in a presence sync or answer (count stays exact)
    max_presence_info_bytes: int = 1024  # a member's info (auth context "presence") above this shows as null


@dataclass(frozen=True)
class RestApiConfig:
    """``modules::api::RestApiModule``: HTTP triggers; loopback by default (the reference binds 0.0.0.0)."""

    port: int = 3111
    host: str = "127.0.0.1"
    default_timeout_ms: int = 30_000
    cors_allowed_origins: tuple[str, ...] = ()
    cors_allowed_methods: tuple[str, ...] = ()
    concurrency_request_limit: int = 1024
    handshake_timeout_ms: int = 10_000  # request line and headers of every request, keep-alive ones included
    body_timeout_ms: int = 30_000  # the whole request body
    max_connections: int = 10_000  # open sockets on the REST port; excess requests are answered 503
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class AdminConfig:
    """``modules::admin::AdminModule`` (streamhub's own): /healthz, /readyz, /metrics and /console.

    With ``token`` set, /metrics and the console need ``Authorization: Bearer <token>`` (the console page also
    takes ``?token=``); /healthz and /readyz stay open so probes need no secret.
    """

    port: int = 3110
    host: str = "127.0.0.1"
    token: str | None = None
    handshake_timeout_ms: int = 10_000
    max_connections: int = 100  # open sockets on the admin port; excess requests are answered 503
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class EngineConfig:
    """The whole engine. ``stream``/``rest_api``/``admin`` are None when the file does not list that module.

    The top-level ``handshake_timeout_ms``, ``max_connections``, ``worker_auth`` and ``tls`` belong to the
    worker port (``port``/``host``); each module carries its own for its port.
    """

    port: int = 49134
    host: str = "127.0.0.1"
    stream: StreamModuleConfig | None = None
    rest_api: RestApiConfig | None = None
    admin: AdminConfig | None = None
    invocation_timeout_ms: int = 30_000
    handshake_timeout_ms: int = 10_000
    max_connections: int = 1000  # open sockets on the worker port; excess upgrades are answered 503
    worker_auth: WorkerAuthConfig | None = None
    tls: TlsConfig | None = None


_DURABLE_STORE = AdapterConfig(store_method="file_based")  # no adapter given: the same store as no config at all


def default_config() -> EngineConfig:
    """The configuration used when no file is given: a durable embedded store, the admin port, all on loopback."""
    return EngineConfig(stream=StreamModuleConfig(adapter=_DURABLE_STORE), admin=AdminConfig())


def _class_of(entry: Section, available: tuple[str, ...], unsupported: frozenset[str], what: str) -> str:
    """Read ``class``, telling apart a typo (unknown) from a real iii class streamhub does not run."""
    names = ", ".join(available)
    value = entry.get("class")
    if value is None:
        entry.fail("class", f"missing (available: {names})")
    if not isinstance(value, str):
        entry.fail("class", f"expected a string, got {show(value)}")
    if value in unsupported:
        entry.fail("class", f"{value} is not supported by streamhub; remove it (streamhub provides: {names})")
    if value not in available:
        entry.fail("class", f"unknown {what} {show(value)} (available: {names})")
    return value


def _adapter(section: Section) -> AdapterConfig:
    section.reject_unknown(("class", "config"))
    class_name = _class_of(section, (KV_STORE, REDIS_ADAPTER), _UNSUPPORTED_ADAPTERS, "adapter class")
    conf = section.section("config")
    log_size = conf.integer("change_log_size", AdapterConfig.change_log_size, low=0)
    log_age = conf.integer("change_log_age_ms", AdapterConfig.change_log_age_ms, low=0)
    if class_name == REDIS_ADAPTER:
        conf.reject_unknown(("redis_url", "key_prefix", "change_log_size", "change_log_age_ms", "durable_replicas"))
        url = conf.text("redis_url", AdapterConfig.redis_url)
        if not url.startswith(_REDIS_SCHEMES):
            schemes = ", ".join(_REDIS_SCHEMES)
            conf.fail("redis_url", f"expected a URL starting with {schemes}, got {show(url)}")
        prefix = conf.text("key_prefix", AdapterConfig.key_prefix)
        if url.startswith(_CLUSTER_SCHEMES) and ("{" in prefix or "}" in prefix):
            conf.fail("key_prefix", f"must not hold {{ or }} on a Redis Cluster (they would pick the hash slot), "
                                    f"got {show(prefix)}")
        replicas = conf.integer("durable_replicas", 0, low=0)
        return AdapterConfig(class_name, redis_url=url, key_prefix=prefix, change_log_size=log_size,
                             change_log_age_ms=log_age, durable_replicas=replicas)
    conf.reject_unknown(
        ("store_method", "file_path", "save_interval_ms", "channel_size", "change_log_size", "change_log_age_ms")
    )
    for ignored in ("save_interval_ms", "channel_size"):  # reference tuning knobs; streamhub writes through
        conf.integer(ignored, 0, low=0)
    method = cast(StoreMethod, conf.choice("store_method", "in_memory", _STORE_METHODS))
    file_path = conf.text("file_path", AdapterConfig.file_path)
    return AdapterConfig(class_name, store_method=method, file_path=file_path, change_log_size=log_size,
                         change_log_age_ms=log_age)


def _stream_module(conf: Section) -> StreamModuleConfig:
    conf.reject_unknown(f.name for f in fields(StreamModuleConfig))  # every field is a config key
    d = StreamModuleConfig
    return StreamModuleConfig(
        port=conf.port("port", d.port),
        host=conf.text("host", d.host),
        auth_function=conf.optional_text("auth_function"),
        adapter=_adapter(conf.section("adapter")) if conf.get("adapter") is not None else _DURABLE_STORE,
        max_message_size=conf.integer("max_message_size", d.max_message_size),
        max_pending_bytes=conf.integer("max_pending_bytes", d.max_pending_bytes),
        join_timeout_ms=conf.integer("join_timeout_ms", d.join_timeout_ms),
        auth_timeout_ms=conf.integer("auth_timeout_ms", d.auth_timeout_ms),
        heartbeat_ms=conf.integer("heartbeat_ms", d.heartbeat_ms, low=0),
        handshake_timeout_ms=conf.integer("handshake_timeout_ms", d.handshake_timeout_ms),
        max_connections=conf.integer("max_connections", d.max_connections),
        max_subscriptions_per_connection=conf.integer("max_subscriptions_per_connection",
                                                      d.max_subscriptions_per_connection),
        max_value_depth=conf.integer("max_value_depth", d.max_value_depth, high=_MAX_VALUE_DEPTH),
        allowed_origins=conf.text_list("allowed_origins"),
        tls=_tls(conf.section("tls")) if conf.get("tls") is not None else None,
        presence_ttl_ms=conf.integer("presence_ttl_ms", d.presence_ttl_ms, low=300),
        cluster_lease_ms=conf.integer("cluster_lease_ms", d.cluster_lease_ms, low=300),
        max_presence_members=conf.integer("max_presence_members", d.max_presence_members, low=0),
        max_presence_info_bytes=conf.integer("max_presence_info_bytes", d.max_presence_info_bytes, low=0),
    )


def _rest_api_module(conf: Section) -> RestApiConfig:
    conf.reject_unknown(
        ("port", "host", "default_timeout", "default_timeout_ms", "cors", "concurrency_request_limit",
         "handshake_timeout_ms", "body_timeout_ms", "max_connections", "tls")
    )
    if conf.get("default_timeout") is not None and conf.get("default_timeout_ms") is not None:
        conf.fail("default_timeout", "give default_timeout or default_timeout_ms, not both")
    timeout_key = "default_timeout" if conf.get("default_timeout") is not None else "default_timeout_ms"
    cors = conf.section("cors")
    cors.reject_unknown(("allowed_origins", "allowed_methods"))
    d = RestApiConfig
    return RestApiConfig(
        port=conf.port("port", d.port),
        host=conf.text("host", d.host),
        default_timeout_ms=conf.integer(timeout_key, d.default_timeout_ms),
        cors_allowed_origins=cors.text_list("allowed_origins"),
        cors_allowed_methods=cors.text_list("allowed_methods"),
        concurrency_request_limit=conf.integer("concurrency_request_limit", d.concurrency_request_limit),
        handshake_timeout_ms=conf.integer("handshake_timeout_ms", d.handshake_timeout_ms),
        body_timeout_ms=conf.integer("body_timeout_ms", d.body_timeout_ms),
        max_connections=conf.integer("max_connections", d.max_connections),
        tls=_tls(conf.section("tls")) if conf.get("tls") is not None else None,
    )


def _admin_module(conf: Section) -> AdminConfig:
    conf.reject_unknown(f.name for f in fields(AdminConfig))  # every field is a config key
    d = AdminConfig
    token = conf.optional_text("token")  # "" (an unset ${ADMIN_TOKEN:}) means no token
    if token is not None and not token.strip():
        conf.fail("token", "blank token (remove it to leave /metrics and /console open on this port)")
    return AdminConfig(
        port=conf.port("port", d.port),
        host=conf.text("host", d.host),
        token=token,
        handshake_timeout_ms=conf.integer("handshake_timeout_ms", d.handshake_timeout_ms),
        max_connections=conf.integer("max_connections", d.max_connections),
        tls=_tls(conf.section("tls")) if conf.get("tls") is not None else None,
    )


_TOP_LEVEL_KEYS = ("port", "host", "modules", "invocation_timeout_ms", "handshake_timeout_ms", "max_connections",
                   "worker_auth", "tls", "registration_namespace_grace_ms")


def _tls(conf: Section) -> TlsConfig:
    """``tls: {cert_file, key_file}``; the files are read when the port is bound (a bad pair stops start-up)."""
    conf.reject_unknown(("cert_file", "key_file"))
    for name in ("cert_file", "key_file"):
        if conf.get(name) is None:
            conf.fail(name, "missing (tls needs both cert_file and key_file, PEM files)")
    return TlsConfig(cert_file=conf.text("cert_file", ""), key_file=conf.text("key_file", ""), key=conf.path)


def _worker_auth(conf: Section) -> WorkerAuthConfig:
    """``worker_auth: {tokens: [...]}``: at least one token, none empty (an empty one would admit ``Bearer ``)."""
    conf.reject_unknown(("tokens",))
    tokens = conf.text_list("tokens")
    if not tokens:
        conf.fail("tokens", "expected at least one token (remove worker_auth to leave the worker port open)")
    for index, token in enumerate(tokens):
        if not token.strip():
            conf.fail(f"tokens[{index}]", "empty token (is its ${VAR} set?)")
    return WorkerAuthConfig(tokens=tokens)


_Modules = tuple[StreamModuleConfig | None, RestApiConfig | None, AdminConfig | None]


def _modules(value: object) -> _Modules:
    """Read the ``modules:`` list; each provided class may appear once since the engine runs one of each."""
    if value is None:
        return None, None, None
    if not isinstance(value, list):
        raise ConfigError(f"modules: expected a list of {{class, config}} entries, got {show(value)}")
    found: dict[str, object] = {}
    first_index: dict[str, int] = {}
    for index, item in enumerate(value):
        entry = Section(item, f"modules[{index}]")
        entry.reject_unknown(("class", "config"))
        class_name = _class_of(entry, (STREAM_MODULE, REST_API_MODULE, ADMIN_MODULE), _UNSUPPORTED_MODULES, "class")
        if class_name in first_index:
            entry.fail("class", f"{class_name} is listed twice (also modules[{first_index[class_name]}])")
        first_index[class_name] = index
        found[class_name] = _MODULE_READERS[class_name](entry.section("config"))
    return (cast(StreamModuleConfig | None, found.get(STREAM_MODULE)),
            cast(RestApiConfig | None, found.get(REST_API_MODULE)),
            cast(AdminConfig | None, found.get(ADMIN_MODULE)))


_MODULE_READERS: dict[str, Callable[[Section], object]] = {
    STREAM_MODULE: _stream_module, REST_API_MODULE: _rest_api_module, ADMIN_MODULE: _admin_module}


def _engine(data: object) -> EngineConfig:
    """Build the EngineConfig from parsed YAML.

    Unlike the reference, an unknown top-level key is refused (``modlues:`` would otherwise run nothing), and so is
    a file without the stream module: streamhub is a streams engine, and a file that silently serves no stream
    port is almost always a mistake. ``registration_namespace_grace_ms`` (newer iii files) is accepted and unused.
    """
    top = Section(data, "")
    if "workers" in top.data:  # iii's newer format: read as the older one it would run nothing
        top.fail("workers", "the newer iii format is not supported; use modules: with class: entries")
    top.reject_unknown(_TOP_LEVEL_KEYS)
    top.integer("registration_namespace_grace_ms", 0, low=0)
    stream, rest_api, admin = _modules(top.get("modules"))
    config = EngineConfig(
        port=top.integer("port", 0, low=0, high=65535) or EngineConfig.port,  # 0 means default, as in iii
        host=top.text("host", EngineConfig.host),
        stream=stream,
        rest_api=rest_api,
        admin=admin,
        invocation_timeout_ms=top.integer("invocation_timeout_ms", EngineConfig.invocation_timeout_ms),
        handshake_timeout_ms=top.integer("handshake_timeout_ms", EngineConfig.handshake_timeout_ms),
        max_connections=top.integer("max_connections", EngineConfig.max_connections),
        worker_auth=_worker_auth(top.section("worker_auth")) if top.get("worker_auth") is not None else None,
        tls=_tls(top.section("tls")) if top.get("tls") is not None else None,
    )
    if stream is None:  # checked last, so that a typo in another key is named first
        raise ConfigError(f"modules: no {STREAM_MODULE} entry, so there would be no stream port; add "
                          f"\"- class: {STREAM_MODULE}\" (or start without -c for the built-in defaults)")
    return config


def load_config(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> EngineConfig:
    """Read, env-expand, parse and validate a config file; ``None`` means :func:`default_config`.

    A file without the stream module is refused (the reference would run no stream port); a stream module
    without ``adapter`` stores durably under ``./data``, as with no file. ``environ`` defaults to ``os.environ``.
    """
    if path is None:
        return default_config()
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = expand_env(raw, os.environ if environ is None else environ)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from None
    return _engine(parse_yaml(text, source))
