"""The admin module's config: defaults, the embedded default enables it, and one-line errors naming the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from streamhub.config import AdminConfig, TlsConfig, default_config, load_config
from streamhub.errors import ConfigError

ADMIN = "modules::admin::AdminModule"


STREAM = "  - class: modules::stream::StreamModule\n"  # a config file must list the stream module


def load(tmp_path: Path, text: str, **env: str) -> AdminConfig | None:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text) + STREAM, encoding="utf-8")
    return load_config(path, environ=env).admin


def test_the_embedded_default_serves_the_admin_port_on_loopback() -> None:
    assert default_config().admin == AdminConfig(port=3110, host="127.0.0.1", token=None)


def test_a_config_file_enables_it_only_when_listed(tmp_path: Path) -> None:
    assert load(tmp_path, "modules:\n") is None
    assert load(tmp_path, f"modules:\n  - class: {ADMIN}\n") == AdminConfig()


def test_every_key_is_read(tmp_path: Path) -> None:
    admin = load(tmp_path, f"""
        modules:
          - class: {ADMIN}
            config:
              host: 0.0.0.0
              port: 9100
              token: ${{ADMIN_TOKEN}}
              handshake_timeout_ms: 500
              max_connections: 7
              tls: {{cert_file: c.pem, key_file: k.pem}}
        """, ADMIN_TOKEN="t0k")
    assert admin == AdminConfig(port=9100, host="0.0.0.0", token="t0k", handshake_timeout_ms=500, max_connections=7,
                                tls=TlsConfig("c.pem", "k.pem"))


def test_an_empty_token_variable_means_no_token(tmp_path: Path) -> None:
    admin = load(tmp_path, f"modules:\n  - class: {ADMIN}\n    config:\n      token: ${{ADMIN_TOKEN:}}\n")
    assert admin is not None and admin.token is None


@pytest.mark.parametrize(("body", "error"), [
    ("tokn: x", 'modules[0].config.tokn: unknown key; did you mean "token"?'),
    ("token: '   '", "modules[0].config.token: blank token"),
    ("port: 70000", "modules[0].config.port: expected an integer from 1 to 65535, got 70000"),
])
def test_mistakes_stop_start_up_naming_the_key(tmp_path: Path, body: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"modules:\n  - class: {ADMIN}\n    config:\n      {body}\n")
    assert caught.value.message.startswith(error)


def test_listed_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"modules\[1\]\.class: modules::admin::AdminModule is listed twice"):
        load(tmp_path, f"modules:\n  - class: {ADMIN}\n  - class: {ADMIN}\n")
