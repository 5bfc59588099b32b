"""Credentials in the SDK: the worker token's header, what a refusal says, and keeping secrets out of messages.

A stream URL often carries the user's token (``ws://host:3112/?token=...``, the way browsers must send it) and a
worker sends ``Authorization: Bearer ...``. Exceptions and logs end up in log aggregators, bug reports and
screens, so every URL and every foreign exception text the SDK formats goes through here first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from streamhub.errors import InvalidRequest
from streamhub.sdk.errors import ConnectError

__all__ = ["MASK", "describe", "has_authorization", "redact", "redact_url", "refusal_error", "with_token"]

MASK = "***"

# A query parameter whose name looks like a credential: token, access_token, api_key, apikey, secret,
# client_secret, auth, authorization, password, passwd, pwd, sig, signature, session, jwt, credential...
_SECRET_NAME = r"[\w.\-~%]*?(?:token|key|secret|auth|pass|pwd|sig|session|jwt|credential|cookie)[\w.\-~%]*"
_QUERY_PARAM = re.compile(rf"(?i)([?&;](?:{_SECRET_NAME})=)([^&#\s'\"<>]*)")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)([^/?#@\s'\"]+)(@)")
_AUTH_HEADER = re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)([^'\"\r\n,}]+)")
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9\-._~+/]+=*)")


def redact_url(url: str) -> str:
    """``url`` with credential-like query values and any userinfo (``user:password@``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = _QUERY_PARAM.sub(rf"\1{MASK}", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """Free text (e.g. an aiohttp exception holding a URL) with every credential pattern masked."""
    text = _QUERY_PARAM.sub(rf"\1{MASK}", text)
    text = _USERINFO.sub(rf"\1{MASK}\3", text)
    text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
    return _SCHEME_TOKEN.sub(rf"\1\2{MASK}", text)


def describe(error: BaseException | None) -> str:
    """An exception's text (its type when it has none), redacted, for messages and logs."""
    if error is None:
        return "no error recorded"
    return redact(str(error) or type(error).__name__)


def with_token(headers: Mapping[str, str], token: str | None) -> dict[str, str]:
    """The worker port's upgrade headers: ``headers`` plus ``Authorization: Bearer`` from ``token``, else from
    ``$III_TOKEN`` (what the iii SDKs read); an ``Authorization`` already in ``headers`` wins over the variable."""
    if has_authorization(headers):
        if token is not None:
            raise InvalidRequest("give token= or an Authorization header, not both")
        return dict(headers)
    token = (os.environ.get("III_TOKEN", "") if token is None else token).strip()
    return {**headers, "Authorization": f"Bearer {token}"} if token else dict(headers)


def has_authorization(headers: Mapping[str, str]) -> bool:
    """True when ``headers`` set ``Authorization`` (names match case-insensitively)."""
    return any(name.lower() == "authorization" for name in headers)


def refusal_error(safe_url: str, exc: BaseException, *, token_sent: bool) -> ConnectError:
    """Why the worker link gave up: an upgrade answered 401/403 (code ``unauthorized``/``forbidden``, saying what
    to fix) or a URL/header that cannot work (``connect_failed``)."""
    if not isinstance(exc, aiohttp.WSServerHandshakeError):
        return ConnectError(f"cannot connect to {safe_url}: {describe(exc)}")
    status = exc.status
    if status == 401:
        hint = ("the engine did not accept the worker token (compare it with worker_auth.tokens)" if token_sent
                else "the engine requires a worker token (worker_auth): pass token= or set III_TOKEN")
        return ConnectError(f"{safe_url} refused the worker connection (HTTP 401): {hint}", code="unauthorized")
    return ConnectError(f"{safe_url} refused the worker connection (HTTP {status})", code="forbidden")
