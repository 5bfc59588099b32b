"""WebSocket close codes streamhub sends, and what a client should do after each."""

from __future__ import annotations

from typing import Final

__all__ = ["GOING_AWAY", "MESSAGE_TOO_BIG", "NORMAL", "POLICY_VIOLATION", "TRY_AGAIN_LATER"]

NORMAL: Final = 1000
"""Orderly close; reconnect only if the application wants to."""

GOING_AWAY: Final = 1001
"""The engine is shutting down; reconnect with backoff."""

POLICY_VIOLATION: Final = 1008
"""The client broke a rule the engine enforces; reconnecting unchanged will fail again."""

MESSAGE_TOO_BIG: Final = 1009
"""A frame exceeded ``max_message_size``; do not resend it."""

TRY_AGAIN_LATER: Final = 1013
"""The client could not keep up (outbound buffer full); reconnect and re-join to get a fresh snapshot."""
