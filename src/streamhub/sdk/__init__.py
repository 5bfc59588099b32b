"""streamhub's Python SDK: workers (functions, triggers, calls) and stream subscribers, on asyncio.

Separate from the server: it imports only ``streamhub.protocol``, ``streamhub.errors`` and
``streamhub.core.update_ops``, plus aiohttp's WebSocket client. See docs/sdk.md.
"""

from streamhub.core.update_ops import UpdateOp
from streamhub.errors import StreamhubError
from streamhub.sdk.client import Client
from streamhub.sdk.errors import (
    CallError,
    CallTimeout,
    ConnectError,
    ConnectionLost,
    NotConnected,
    RegistrationError,
    SubscriptionError,
)
from streamhub.sdk.events import Record, StreamEvent
from streamhub.sdk.link import Backoff
from streamhub.sdk.positions import Position
from streamhub.sdk.presence import PresenceAnswer, PresenceMember
from streamhub.sdk.registry import FunctionEntry, Registration, TriggerEntry
from streamhub.sdk.subscriber import StreamClient
from streamhub.sdk.subscription import Subscription

__all__ = [
    "Backoff",
    "CallError",
    "CallTimeout",
    "Client",
    "ConnectError",
    "ConnectionLost",
    "FunctionEntry",
    "NotConnected",
    "Position",
    "PresenceAnswer",
    "PresenceMember",
    "Record",
    "Registration",
    "RegistrationError",
    "StreamClient",
    "StreamEvent",
    "StreamhubError",
    "Subscription",
    "SubscriptionError",
    "TriggerEntry",
    "UpdateOp",
]
