"""Turns an ``http`` handler's answer into a response whose framing only the server decides.

A handler is code the engine does not control; its answer must never change how the connection is framed. So the
handler's ``headers`` lose every framing and hop-by-hop header (``Content-Length``, ``Transfer-Encoding``,
``Connection`` and the headers it names, ``Upgrade``, ...) and every header that could split the response (a name
that is not an RFC 9110 token, a value holding CR, LF, NUL or another control character); a status outside
200-599 is refused by the caller. What was dropped is returned so the caller can say so once per route.

Body: bytes-like as they are, a string as UTF-8 text, anything else as JSON; the handler's own ``Content-Type``
is kept, else ``application/octet-stream`` / ``text/plain; charset=utf-8`` / ``application/json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from streamhub.protocol.codec import encode

__all__ = ["FRAMING_HEADERS", "HandlerAnswer", "build_response", "valid_status"]

# Lower-case names the server alone sets: message framing (RFC 9112 §6) and hop-by-hop headers (RFC 9110 §7.6.1).
FRAMING_HEADERS = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
    "proxy-authenticate", "proxy-authorization", "proxy-connection",
})

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is the only control character a field value may hold


@dataclass(slots=True)
class HandlerAnswer:
    """The headers kept from a handler's answer and the raw names of those dropped (for one log line)."""

    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    dropped: list[str] = field(default_factory=list)


def valid_status(status: Any) -> bool:
    """True for an integer (not a bool) in 200-599: 1xx would switch or stall the connection, 600+ is no status."""
    return type(status) is int and 200 <= status <= 599


def clean_headers(value: Any) -> HandlerAnswer:
    """The handler's headers (``{"Name": "v" | [..]}`` or ``["Name: v", ...]``) minus framing and unsafe ones."""
    answer = HandlerAnswer()
    pairs = list(_pairs(value))
    named = {token.strip().lower() for name, v in pairs if name.strip().lower() == "connection"
             for token in v.split(",")}  # a Connection value lists more hop-by-hop headers
    for name, v in pairs:
        name = name.strip()
        if not _TOKEN.fullmatch(name) or _CONTROL.search(v) or name.lower() in FRAMING_HEADERS | named:
            answer.dropped.append(name)
        else:
            answer.headers.add(name, v.strip(" \t"))
    return answer


def build_response(status: int, answer: HandlerAnswer, payload: Any) -> web.Response:
    """The response for a checked status, cleaned headers and a body.

    Raises ``TypeError``/``ValueError`` for a body that cannot be sent (not JSON, not UTF-8).
    """
    headers = answer.headers
    types = headers.popall("Content-Type", [])
    if isinstance(payload, bytes | bytearray | memoryview):
        body, default = bytes(payload), "application/octet-stream"
    elif isinstance(payload, str):
        body, default = payload.encode(), "text/plain; charset=utf-8"
    else:
        body, default = encode(payload), "application/json"
    headers["Content-Type"] = types[-1] if types else default
    return web.Response(status=status, body=body, headers=headers)


def _pairs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(name), str(item)) for name, v in value.items()
                for item in (v if isinstance(v, list) else [v])]
    if isinstance(value, list):
        split = (str(line).split(":", 1) for line in value if ":" in str(line))
        return [(name, v) for name, v in split]
    return []
