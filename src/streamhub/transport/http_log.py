"""aiohttp's server logger, without a traceback for requests that do not parse.

aiohttp answers a request it cannot parse (bad request line, bad header bytes, too many headers, a body shorter
than its ``Content-Length``) with 400 and closes the connection, then logs the parser's exception at ERROR with its
traceback. That is the peer's fault, not a bug, and anyone can send it: it is logged as one INFO line instead.
Every other exception aiohttp logs (a handler that raised) keeps its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from streamhub.protocol.codec import shorten

__all__ = ["server_logger"]


class _QuietParseErrors(logging.LoggerAdapter[logging.Logger]):
    def exception(self, msg: object, *args: object, exc_info: Any = True, stack_info: bool = False,
                  stacklevel: int = 1, extra: Mapping[str, object] | None = None, **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = shorten(" ".join(str(exc_info.message).split()), 200)
            self.info("%s: %d %s", str(msg) % args if args else msg, exc_info.code, reason)
            return
        super().exception(msg, *args, exc_info=exc_info, stack_info=stack_info, stacklevel=stacklevel, extra=extra,
                          **kwargs)


def server_logger() -> logging.LoggerAdapter[logging.Logger]:
    """The logger to give ``web.AppRunner(logger=...)``: aiohttp's own, parse errors as one line."""
    return _QuietParseErrors(logging.getLogger("aiohttp.server"), {})
