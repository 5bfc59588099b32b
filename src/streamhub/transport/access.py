"""Who may open a socket, and over what: worker bearer tokens, stream-port Origins, TLS contexts.

These checks run on the upgrade request, before any socket is opened or any worker function is called, so a
refused peer costs the engine one HTTP answer. Nothing here logs or echoes a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from streamhub.config import TlsConfig
from streamhub.errors import ConfigError

__all__ = ["BearerTokens", "OriginPolicy", "is_loopback", "tls_context"]

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class BearerTokens:
    """The worker port's ``worker_auth`` tokens: an upgrade must carry ``Authorization: Bearer <one of them>``.

    Both sides are hashed first so every comparison runs over 32 bytes whatever the lengths, and every token is
    compared (no early exit), so the answer's timing says nothing about which token came close.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = tuple(_digest(token.strip()) for token in tokens if token.strip())
        if not self._digests:
            raise ValueError("worker_auth needs at least one non-empty token")

    def admits(self, authorization: str | None) -> bool:
        """True when the header is ``Bearer <token>`` with one of the configured tokens."""
        presented = _bearer_token(authorization)
        digest = _digest(presented)
        matched = False
        for expected in self._digests:
            matched |= hmac.compare_digest(digest, expected)
        return matched and presented != ""

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when the request may upgrade, else the 401 to answer (logged without the token)."""
        header = request.headers.get("Authorization")
        if self.admits(header):
            return None
        reason = "no bearer token" if _bearer_token(header) == "" else "bearer token not accepted"
        log.info("worker connection from %s to %s refused: %s (worker_auth)", request.remote, request.path, reason)
        body = {"error": "unauthorized",
                "message": f"{reason}: the worker port requires Authorization: Bearer <token> (worker_auth)"}
        return web.json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="streamhub workers"'})


class OriginPolicy:
    """The stream module's ``allowed_origins``: which browser pages may open a stream socket.

    Empty (or holding ``*``) allows any. A request without ``Origin`` comes from a non-browser client (a
    browser always sends one on a WebSocket upgrade) and is allowed: the check protects users' browsers from
    other sites' pages, it is not authentication. Entries match case-insensitively, ignoring a trailing ``/``
    and a default port (``https://app.example.com:443`` equals ``https://app.example.com``).
    """

    def __init__(self, origins: Iterable[str]) -> None:
        listed = {_normalize_origin(origin) for origin in origins}
        self._any = not listed or "*" in listed
        self._allowed = frozenset(listed)

    def allows(self, origin: str | None) -> bool:
        return self._any or origin is None or _normalize_origin(origin) in self._allowed

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when the request's Origin is allowed, else the 403 to answer."""
        origin = request.headers.get("Origin")
        if self.allows(origin):
            return None
        log.info("stream connection from %s refused: origin %.200r is not in allowed_origins", request.remote, origin)
        return web.json_response({"error": "forbidden", "message": "origin not allowed (allowed_origins)"},
                                 status=403)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context for one port, or ``ConfigError`` naming the key (``modules[0].config.tls.cert_file``).

    The files are checked one by one first so the message says which of the two is wrong; OpenSSL alone
    answers "PEM lib" for either.
    """
    cert = _read(tls, "cert_file", tls.cert_file)
    key = _read(tls, "key_file", tls.key_file)
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise ConfigError(f"{tls.key}.cert_file: cannot load {tls.cert_file}: no PEM certificate in it")
    if b"PRIVATE KEY-----" not in key:
        raise ConfigError(f"{tls.key}.key_file: cannot load {tls.key_file}: no PEM private key in it")
    if b"ENCRYPTED" in key:
        raise ConfigError(f"{tls.key}.key_file: cannot load {tls.key_file}: the key is encrypted "
                          "(give an unencrypted PEM key; restrict its file permissions instead)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        if reason == "KEY_VALUES_MISMATCH":
            reason = "the key does not belong to the certificate"
        raise ConfigError(f"{tls.key}.cert_file: cannot load {tls.cert_file} with {tls.key_file}: {reason}") from None
    return context


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 (and IPv4-mapped loopback); False for 0.0.0.0, :: and every other address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


# Private


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _bearer_token(header: str | None) -> str:
    """The token of ``Bearer <token>`` (scheme case-insensitive), "" for anything else."""
    if not header:
        return ""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _normalize_origin(origin: str) -> str:
    text = origin.strip().rstrip("/").lower()
    if text in ("*", "null"):
        return text
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        return text
    if port is not None and _DEFAULT_PORTS.get(parts.scheme) == port:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}"
    return text


def _read(tls: TlsConfig, name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{tls.key}.{name}: cannot load {path}: {exc.strerror or exc}") from None


def _no_password() -> bytes:
    """Never prompt on the terminal for a key's passphrase (an encrypted key is refused above)."""
    return b""
