"""config.yaml loading: defaults, iii's format, env expansion and one-line errors naming the key."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from streamhub.config import (
    KV_STORE,
    REDIS_ADAPTER,
    AdapterConfig,
    EngineConfig,
    RestApiConfig,
    StreamModuleConfig,
    default_config,
    expand_env,
    load_config,
)
from streamhub.errors import ConfigError

STREAM = "modules::stream::StreamModule"
REST = "modules::api::RestApiModule"
ADMIN = "modules::admin::AdminModule"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, **env: str) -> EngineConfig:
    return load_config(write(tmp_path, text), env)


def stream_with(tmp_path: Path, body: str, **env: str) -> StreamModuleConfig:
    """Load a file whose only module is the stream module with ``body`` (YAML lines) as its config."""
    indented = textwrap.indent(textwrap.dedent(body), " " * 6)
    config = load(tmp_path, f"modules:\n  - class: {STREAM}\n    config:\n{indented}", **env)
    assert config.stream is not None
    return config.stream


def error(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, **env)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- defaults ------------------------------------------------------------------------------------------


def test_default_config() -> None:
    config = default_config()
    assert (config.port, config.host, config.invocation_timeout_ms) == (49134, "127.0.0.1", 30000)
    assert config.rest_api is None
    assert config.stream == StreamModuleConfig(
        port=3112,
        host="127.0.0.1",
        auth_function=None,
        adapter=AdapterConfig(class_name=KV_STORE, store_method="file_based", file_path="./data"),
        max_message_size=1048576,
        max_pending_bytes=4 * 1048576,
        join_timeout_ms=10000,
        auth_timeout_ms=10000,
    )


def test_load_config_none_is_default() -> None:
    assert load_config(None) == default_config()


def test_stream_module_without_adapter_stores_durably_like_no_config(tmp_path: Path) -> None:
    config = load(tmp_path, f"modules:\n  - class: {STREAM}\n")
    assert config.stream is not None
    assert config.stream.adapter == AdapterConfig(class_name=KV_STORE, store_method="file_based", file_path="./data")
    assert config == replace(default_config(), admin=None)  # the admin port comes with the built-in defaults only
    kv_without_method = stream_with(tmp_path, f"adapter: {{class: {KV_STORE}}}\n")  # the reference's KvStore default
    assert kv_without_method.adapter.store_method == "in_memory"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "port: 50000\n", f"modules:\n  - class: {REST}\n"])
def test_file_without_the_stream_module_is_refused(tmp_path: Path, text: str) -> None:
    assert error(tmp_path, text) == (
        f'modules: no {STREAM} entry, so there would be no stream port; add "- class: {STREAM}" '
        "(or start without -c for the built-in defaults)")


def test_port_zero_uses_the_default(tmp_path: Path) -> None:
    assert load(tmp_path, f"port: 0\nmodules:\n  - class: {STREAM}\n") == replace(default_config(), admin=None)


# --- a full iii-style file ------------------------------------------------------------------------------

FULL = f"""\
port: 49200
host: 0.0.0.0
invocation_timeout_ms: "5000"
modules:
  - class: {STREAM}
    config:
      port: ${{STREAM_PORT:3112}}
      host: 0.0.0.0            # any interface
      auth_function: stream::auth
      max_message_size: 65536
      max_pending_bytes: 1_000_000
      join_timeout_ms: 2000
      auth_timeout_ms: 3000
      adapter:
        class: {REDIS_ADAPTER}
        config: {{ redis_url: "${{REDIS_URL:redis://localhost:6379}}", key_prefix: "app:" }}
  - class: {REST}
    config:
      port: 3111
      host: 127.0.0.1
      default_timeout: 15000
      concurrency_request_limit: 64
      cors:
        allowed_origins: ["http://localhost:5173", "https://example.com"]
        allowed_methods: [GET, POST]
"""


def test_full_file_with_redis_and_rest(tmp_path: Path) -> None:
    config = load(tmp_path, FULL, REDIS_URL="redis://cache:6380/2")
    assert (config.port, config.host, config.invocation_timeout_ms) == (49200, "0.0.0.0", 5000)
    assert config.stream == StreamModuleConfig(
        port=3112,
        host="0.0.0.0",
        auth_function="stream::auth",
        adapter=AdapterConfig(class_name=REDIS_ADAPTER, redis_url="redis://cache:6380/2", key_prefix="app:"),
        max_message_size=65536,
        max_pending_bytes=1_000_000,
        join_timeout_ms=2000,
        auth_timeout_ms=3000,
    )
    assert config.stream.adapter.is_redis
    assert config.rest_api == RestApiConfig(
        port=3111,
        host="127.0.0.1",
        default_timeout_ms=15000,
        cors_allowed_origins=("http://localhost:5173", "https://example.com"),
        cors_allowed_methods=("GET", "POST"),
        concurrency_request_limit=64,
    )


def test_kv_store_file_based_accepts_reference_tuning_keys(tmp_path: Path) -> None:
    stream = stream_with(
        tmp_path,
        f"""\
        adapter:
          class: {KV_STORE}
          config:
            store_method: file_based
            file_path: /var/lib/streams
            save_interval_ms: 5000
            channel_size: 256
        """,
    )
    assert stream.adapter == AdapterConfig(KV_STORE, store_method="file_based", file_path="/var/lib/streams")


def test_rest_api_defaults_and_ms_key(tmp_path: Path) -> None:
    config = load(tmp_path, f"modules:\n  - class: {STREAM}\n  - class: {REST}\n")
    assert config.rest_api == RestApiConfig(port=3111, host="127.0.0.1", default_timeout_ms=30000)
    config = load(tmp_path,
                  f"modules:\n  - class: {STREAM}\n  - class: {REST}\n    config: {{default_timeout_ms: 10}}\n")
    assert config.rest_api is not None and config.rest_api.default_timeout_ms == 10


def test_quoted_digits_and_empty_auth_function(tmp_path: Path) -> None:
    stream = stream_with(tmp_path, 'port: "4000"\nauth_function: "${AUTH:}"\n')
    assert (stream.port, stream.auth_function) == (4000, None)


# --- env expansion -------------------------------------------------------------------------------------


def test_expand_env_set_value_wins_over_default() -> None:
    assert expand_env("port: ${PORT:3112}", {"PORT": "4000"}) == "port: 4000"
    assert expand_env("url: ${URL}", {"URL": "redis://x:1"}) == "url: redis://x:1"


def test_expand_env_unset_uses_default_which_may_contain_colons() -> None:
    text = "url: ${REDIS_URL:redis://localhost:6379/0}"
    assert expand_env(text, {}) == "url: redis://localhost:6379/0"
    assert expand_env("x: ${A:}", {}) == "x: "


def test_expand_env_set_to_empty_beats_default() -> None:
    assert expand_env("host: '${HOST:127.0.0.1}'", {"HOST": ""}) == "host: ''"


def test_expand_env_leaves_dollar_var_alone_and_does_not_nest() -> None:
    assert expand_env("a: $HOME and $${X:1}", {"HOME": "/root"}) == "a: $HOME and $1"
    assert expand_env("a: ${A:${B}}", {"B": "b"}) == "a: ${B}"


def test_expand_env_unset_without_default_names_variable_and_line() -> None:
    with pytest.raises(ConfigError, match=r"line 2: environment variable REDIS_URL is not set"):
        expand_env("a: 1\nurl: ${REDIS_URL}\n", {})


def test_expand_env_applies_to_comments(tmp_path: Path) -> None:
    assert expand_env("# port ${P:1}\n", {}) == "# port 1\n"
    message = error(tmp_path, "port: 1  # was ${OLD_PORT}\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: line 1: ")
    assert "OLD_PORT" in message


def test_load_config_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMHUB_TEST_WORKER_PORT", "50001")
    text = f"port: ${{STREAMHUB_TEST_WORKER_PORT}}\nmodules:\n  - class: {STREAM}\n"
    assert load_config(write(tmp_path, text)).port == 50001


def test_env_expansion_feeds_the_parsed_config(tmp_path: Path) -> None:
    stream = stream_with(tmp_path, "port: ${STREAM_PORT:3112}\n", STREAM_PORT="4100")
    assert stream.port == 4100


# --- errors --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="file not found") as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: file not found"


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, "port: 1\nmodules:\n  - class: x\n   config: [\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: line ")


def test_yaml_syntax_error_line_number(tmp_path: Path) -> None:
    message = error(tmp_path, "port: 1\nhost: a\nbad: : x\n")
    assert f"{tmp_path / 'config.yaml'}: line 3: " in message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    message = error(tmp_path, f"modules:\n  - class: {STREAM}\nmodules:\n  - class: {REST}\n")
    assert "line 3" in message and "duplicate key 'modules'" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("port: abc", 'modules[0].config.port: expected an integer from 1 to 65535, got "abc"'),
        ("port: 70000", "modules[0].config.port: expected an integer from 1 to 65535, got 70000"),
        ("port: 0", "modules[0].config.port: expected an integer from 1 to 65535, got 0"),
        ("port: true", "modules[0].config.port: expected an integer from 1 to 65535, got true"),
        ("port: 3112.5", "modules[0].config.port: expected an integer from 1 to 65535, got 3112.5"),
        ('host: ""', 'modules[0].config.host: expected a non-empty string, got ""'),
        ("host: 8", "modules[0].config.host: expected a non-empty string, got 8"),
        ("auth_function: [a]", "modules[0].config.auth_function: expected a string, got a list"),
        ("max_message_size: -1", "modules[0].config.max_message_size: expected an integer >= 1, got -1"),
        ("join_timeout_ms: soon", 'modules[0].config.join_timeout_ms: expected an integer >= 1, got "soon"'),
        ("adapter: redis", 'modules[0].config.adapter: expected a mapping, got "redis"'),
    ],
)
def test_stream_value_errors_name_the_key(tmp_path: Path, body: str, expected: str) -> None:
    assert error(tmp_path, f"modules:\n  - class: {STREAM}\n    config:\n      {body}\n") == expected


def test_unknown_stream_key_is_rejected_with_suggestion(tmp_path: Path) -> None:
    message = error(tmp_path, f"modules:\n  - class: {STREAM}\n    config: {{prot: 3112}}\n")
    assert message.startswith('modules[0].config.prot: unknown key; did you mean "port"?')
    assert ("accepted: adapter, allowed_origins, auth_function, auth_timeout_ms, cluster_lease_ms, "
            "handshake_timeout_ms") in message


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        (f"modules:\n  - clas: {STREAM}\n", "modules[0].clas: unknown key"),
        (
            f"modules:\n  - class: {REST}\n    config: {{timeout: 1}}\n",
            "modules[0].config.timeout: unknown key",
        ),
        (
            f"modules:\n  - class: {REST}\n    config: {{cors: {{origins: [a]}}}}\n",
            "modules[0].config.cors.origins: unknown key",
        ),
        (
            f"modules:\n  - class: {STREAM}\n    config:\n      adapter:\n        class: {REDIS_ADAPTER}\n"
            "        config: {redis_uri: x}\n",
            'modules[0].config.adapter.config.redis_uri: unknown key; did you mean "redis_url"?',
        ),
        (
            f"modules:\n  - class: {STREAM}\n    config:\n      adapter:\n        class: {KV_STORE}\n"
            "        config: {redis_url: x}\n",
            "modules[0].config.adapter.config.redis_url: unknown key",
        ),
    ],
)
def test_unknown_keys_everywhere(tmp_path: Path, text: str, prefix: str) -> None:
    assert error(tmp_path, text).startswith(prefix)


def test_unknown_store_method(tmp_path: Path) -> None:
    text = f"""\
    modules:
      - class: {STREAM}
        config:
          adapter:
            class: {KV_STORE}
            config: {{store_method: disk}}
    """
    expected = (
        'modules[0].config.adapter.config.store_method: expected one of in_memory, file_based, got "disk"'
    )
    assert error(tmp_path, text) == expected


def test_bad_redis_url(tmp_path: Path) -> None:
    text = (
        f"modules:\n  - class: {STREAM}\n    config:\n      adapter:\n"
        f"        class: {REDIS_ADAPTER}\n        config: {{redis_url: 'localhost:6379'}}\n"
    )
    assert error(tmp_path, text).startswith("modules[0].config.adapter.config.redis_url: expected a URL")


def _redis_config(tmp_path: Path, config: str) -> str:
    return (f"modules:\n  - class: {STREAM}\n    config:\n      adapter:\n"
            f"        class: {REDIS_ADAPTER}\n        config: {config}\n")


def test_redis_cluster_url_and_durable_replicas(tmp_path: Path) -> None:
    text = _redis_config(tmp_path, "{redis_url: 'redis+cluster://u:p@10.0.0.5:7000', durable_replicas: 1}")
    adapter = load(tmp_path, text).stream.adapter  # type: ignore[union-attr]
    assert (adapter.redis_url, adapter.durable_replicas, adapter.is_cluster) == (
        "redis+cluster://u:p@10.0.0.5:7000", 1, True)
    plain = load(tmp_path, _redis_config(tmp_path, "{redis_url: 'redis://x:6379'}")).stream.adapter  # type: ignore[union-attr]
    assert (plain.durable_replicas, plain.is_cluster) == (0, False)


def test_a_cluster_prefix_with_braces_and_negative_replicas_are_refused(tmp_path: Path) -> None:
    braces = _redis_config(tmp_path, "{redis_url: 'rediss+cluster://h:7000', key_prefix: 'app{x}:'}")
    assert error(tmp_path, braces).startswith(
        "modules[0].config.adapter.config.key_prefix: must not hold { or } on a Redis Cluster")
    negative = _redis_config(tmp_path, "{redis_url: 'redis://h:6379', durable_replicas: -1}")
    assert error(tmp_path, negative).startswith("modules[0].config.adapter.config.durable_replicas:")


def test_unknown_module_class_lists_available(tmp_path: Path) -> None:
    message = error(tmp_path, f"modules:\n  - class: {STREAM}\n  - class: modules::stream::Foo\n")
    assert message == (
        f'modules[1].class: unknown class "modules::stream::Foo" (available: {STREAM}, {REST}, {ADMIN})'
    )


@pytest.mark.parametrize(
    "name", ["modules::queue::QueueModule", "modules::state::StateModule", "modules::cron::CronModule"]
)
def test_reference_module_not_supported(tmp_path: Path, name: str) -> None:
    message = error(tmp_path, f"modules:\n  - class: {STREAM}\n  - class: {name}\n    config: {{}}\n")
    assert message.startswith(f"modules[1].class: {name} is not supported by streamhub")


def test_unknown_and_unsupported_adapter_class(tmp_path: Path) -> None:
    base = f"modules:\n  - class: {STREAM}\n    config:\n      adapter: {{class: %s}}\n"
    message = error(tmp_path, base % "modules::stream::adapters::Mongo")
    assert message.startswith(
        'modules[0].config.adapter.class: unknown adapter class "modules::stream::adapters::Mongo"'
    )
    assert f"available: {KV_STORE}, {REDIS_ADAPTER}" in message
    message = error(tmp_path, base % "modules::stream::adapters::Bridge")
    assert message.startswith(
        "modules[0].config.adapter.class: modules::stream::adapters::Bridge is not supported"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modules: {}\n", "modules: expected a list of {class, config} entries, got a mapping"),
        ("modules: 3\n", "modules: expected a list of {class, config} entries, got 3"),
        ("- a\n- b\n", "config: expected a mapping, got a list"),
        ("modules:\n  - just-a-string\n", 'modules[0]: expected a mapping, got "just-a-string"'),
        ("modules:\n  - config: {}\n", f"modules[0].class: missing (available: {STREAM}, {REST}, {ADMIN})"),
        (
            f"modules:\n  - class: {STREAM}\n    config: [1]\n",
            "modules[0].config: expected a mapping, got a list",
        ),
        ("port: 65536\n", "port: expected an integer from 0 to 65535, got 65536"),
        ("host: ''\n", 'host: expected a non-empty string, got ""'),
        ("invocation_timeout_ms: 0\n", "invocation_timeout_ms: expected an integer >= 1, got 0"),
    ],
)
def test_structure_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text) == expected


def test_module_listed_twice(tmp_path: Path) -> None:
    message = error(tmp_path, f"modules:\n  - class: {STREAM}\n  - class: {REST}\n  - class: {STREAM}\n")
    assert message == f"modules[2].class: {STREAM} is listed twice (also modules[0])"


def test_rest_timeout_given_twice(tmp_path: Path) -> None:
    text = f"modules:\n  - class: {REST}\n    config: {{default_timeout: 1, default_timeout_ms: 2}}\n"
    assert error(tmp_path, text).startswith("modules[0].config.default_timeout: give default_timeout or")


def test_cors_lists_must_hold_strings(tmp_path: Path) -> None:
    text = f"modules:\n  - class: {REST}\n    config: {{cors: {{allowed_origins: '*'}}}}\n"
    expected = 'modules[0].config.cors.allowed_origins: expected a list of strings, got "*"'
    assert error(tmp_path, text) == expected


def test_newer_workers_format_is_rejected(tmp_path: Path) -> None:
    assert error(tmp_path, "workers:\n  - name: iii-stream\n").startswith("workers: the newer iii format")


@pytest.mark.parametrize(("text", "expected"), [
    (f"modlues:\n  - class: {STREAM}\n", 'modlues: unknown key; did you mean "modules"? (accepted: '),
    (f"prot: 50000\nmodules:\n  - class: {STREAM}\n", 'prot: unknown key; did you mean "port"? (accepted: '),
    (f"worker_uath: {{tokens: [a]}}\nmodules:\n  - class: {STREAM}\n",
     'worker_uath: unknown key; did you mean "worker_auth"?'),
    ("something_else: 1\n", "something_else: unknown key (accepted: handshake_timeout_ms, host, "),
])
def test_unknown_top_level_keys_are_refused_with_a_suggestion(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text).startswith(expected)


def test_newer_iii_top_level_key_is_tolerated(tmp_path: Path) -> None:
    text = f"registration_namespace_grace_ms: 5000\nmodules:\n  - class: {STREAM}\n"
    assert load(tmp_path, text) == replace(default_config(), admin=None)
    assert "registration_namespace_grace_ms: expected an integer" in error(
        tmp_path, text.replace("5000", "soon"))


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read"):
        load_config(tmp_path, {})


# --- security limits (docs/security.md) ------------------------------------------------------------------


def test_security_defaults() -> None:
    config = default_config()
    assert (config.handshake_timeout_ms, config.max_connections, config.worker_auth, config.tls) == (
        10_000, 1000, None, None)
    stream = StreamModuleConfig()
    assert (stream.handshake_timeout_ms, stream.max_subscriptions_per_connection, stream.max_value_depth,
            stream.allowed_origins, stream.tls) == (10_000, 1000, 64, (), None)
    rest = RestApiConfig()
    assert (rest.handshake_timeout_ms, rest.body_timeout_ms, rest.tls) == (10_000, 30_000, None)


def test_worker_auth_tls_and_limits_load(tmp_path: Path) -> None:
    config = load(tmp_path, f"""
        port: 0
        handshake_timeout_ms: 500
        max_connections: 7
        worker_auth: {{tokens: ["${{TOKEN}}", second]}}
        tls: {{cert_file: c.pem, key_file: k.pem}}
        modules:
          - class: {STREAM}
            config:
              allowed_origins: ["https://app.example"]
              max_subscriptions_per_connection: 3
              max_value_depth: 10
              tls: {{cert_file: s.pem, key_file: sk.pem}}
          - class: {REST}
            config: {{body_timeout_ms: 250, max_connections: 9}}
        """, TOKEN="s3cret")
    assert config.worker_auth is not None and config.worker_auth.tokens == ("s3cret", "second")
    assert config.tls is not None and (config.tls.cert_file, config.tls.key_file) == ("c.pem", "k.pem")
    assert (config.handshake_timeout_ms, config.max_connections) == (500, 7)
    assert config.stream is not None and config.stream.allowed_origins == ("https://app.example",)
    assert (config.stream.max_subscriptions_per_connection, config.stream.max_value_depth) == (3, 10)
    assert config.stream.tls is not None and config.stream.tls.key_file == "sk.pem"
    assert config.rest_api is not None and (config.rest_api.body_timeout_ms, config.rest_api.max_connections) == (
        250, 9)


@pytest.mark.parametrize(("text", "expected"), [
    ("worker_auth: {tokens: []}", "worker_auth.tokens: expected at least one token"),
    ('worker_auth: {tokens: [""]}', "worker_auth.tokens[0]: empty token"),
    ("worker_auth: {token: abc}", 'worker_auth.token: unknown key; did you mean "tokens"?'),
    ("tls: {cert_file: c.pem}", "tls.key_file: missing"),
    (f"modules:\n  - class: {STREAM}\n    config: {{max_value_depth: 5000}}",
     "modules[0].config.max_value_depth: expected an integer from 1 to 200"),
    (f"modules:\n  - class: {REST}\n    config: {{body_timeout_ms: 0}}",
     "modules[0].config.body_timeout_ms: expected an integer >= 1"),
])
def test_security_keys_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text).startswith(expected)
