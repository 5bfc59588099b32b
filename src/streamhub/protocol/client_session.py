"""Per-connection state of the client protocol, without I/O: frames in, typed commands out.

The transport feeds every received frame to ``ClientSession.receive`` and acts on what it returns; the session
remembers which subscriptions are open so a disconnect can fire one leave per subscription.
"""

from __future__ import annotations

import msgspec

from streamhub.core.names import validate_name
from streamhub.errors import ProtocolViolation
from streamhub.protocol.client_messages import (
    ClientMessage,
    Join,
    Leave,
    PresenceQuery,
    PresenceRequest,
    SubscriptionData,
)
from streamhub.protocol.codec import MAX_FRAME_DEPTH, depth_over, shorten

__all__ = ["ClientSession"]

_decoder = msgspec.json.Decoder(ClientMessage)


class ClientSession:
    """Decodes and validates client frames and tracks the connection's subscriptions."""

    def __init__(self) -> None:
        # subscriptionId -> what it watches; a repeated id replaces the earlier subscription.
        self.subscriptions: dict[str, SubscriptionData] = {}

    def receive(self, frame: bytes | str) -> Join | Leave | PresenceRequest | None:
        """Decode one frame.

        Returns:
            The message, or None for an empty frame (ignored, as in the reference).

        Raises:
            InvalidRequest: the frame is not JSON (``invalid_json``), nests too deep (``frame_too_deep``) or is
                not a known message (``invalid_message``), or a name is invalid (``invalid_name``); the caller
                answers with an error frame and keeps the connection open.
        """
        if not frame.strip():
            return None
        message = _decode(frame)
        _validate(message.data)
        return message

    def opened(self, sub: SubscriptionData) -> SubscriptionData | None:
        """Record an accepted join; return the subscription it replaces, if any."""
        replaced = self.subscriptions.get(sub.subscriptionId)
        self.subscriptions[sub.subscriptionId] = sub
        return replaced

    def closed(self, subscription_id: str) -> SubscriptionData | None:
        """Forget a subscription; return it if it was open."""
        return self.subscriptions.pop(subscription_id, None)


def _decode(frame: bytes | str) -> Join | Leave | PresenceRequest:
    """Decode one frame into a message; every failure is a ``ProtocolViolation`` saying what and where."""
    depth = depth_over(frame)
    if depth is not None:
        raise ProtocolViolation(f"frame nests {depth} levels deep (at most {MAX_FRAME_DEPTH})",
                                code="frame_too_deep")
    try:
        message: Join | Leave | PresenceRequest = _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"invalid message: {shorten(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolViolation(f"frame is not valid JSON: {shorten(str(exc))}", code="invalid_json") from None
    except RecursionError:  # only if the stack was already deep: the depth check above bounds the frame
        raise ProtocolViolation("frame nests too deep to decode", code="frame_too_deep") from None
    return message


def _validate(sub: SubscriptionData | PresenceQuery) -> None:
    validate_name("data.streamName", sub.streamName)
    validate_name("data.groupId", sub.groupId)
    if isinstance(sub, SubscriptionData) and sub.id is not None:
        validate_name("data.id", sub.id)
