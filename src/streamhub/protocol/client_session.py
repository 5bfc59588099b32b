"""Per-connection state of the client protocol, without I/O: frames in, typed commands out.

The transport feeds every received frame to ``ClientSession.receive`` and acts on what it returns; the session
remembers which subscriptions are open so a disconnect can fire one leave per subscription.
"""

from __future__ import annotations

import msgspec

from streamhub.core.names import validate_name
from streamhub.errors import ProtocolViolation
from streamhub.protocol.client_messages import ClientMessage, Join, Leave, SubscriptionData

__all__ = ["ClientSession"]

_decoder = msgspec.json.Decoder(ClientMessage)


class ClientSession:
    """Decodes and validates client frames and tracks the connection's subscriptions."""

    def __init__(self) -> None:
        # subscriptionId -> what it watches; a repeated id replaces the earlier subscription.
        self.subscriptions: dict[str, SubscriptionData] = {}

    def receive(self, frame: bytes | str) -> Join | Leave | None:
        """Decode one frame.

        Returns:
            The message, or None for an empty frame (ignored, as in the reference).

        Raises:
            InvalidRequest: the frame is not JSON or not a known message (``ProtocolViolation``), or a name is
                invalid (``InvalidName``); the caller answers with an error frame and keeps the connection open.
        """
        if not frame.strip():
            return None
        try:
            message: Join | Leave = _decoder.decode(frame)
        except msgspec.ValidationError as exc:
            raise ProtocolViolation(f"invalid message: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ProtocolViolation(f"frame is not valid JSON: {exc}", code="invalid_json") from None
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


def _validate(sub: SubscriptionData) -> None:
    validate_name("data.streamName", sub.streamName)
    validate_name("data.groupId", sub.groupId)
    if sub.id is not None:
        validate_name("data.id", sub.id)
