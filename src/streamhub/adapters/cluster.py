"""The seam between the engine's cluster (``engine/cluster.py``) and the store that links engines (Redis).

Why a seam: the engine decides what to route and announce; the bus only moves bytes and keeps leases, so the
engine layer never imports a client library. Only distributed adapters have a bus (``registry.build_cluster``);
an engine on an embedded store has none and behaves as a single engine.

Contract of a bus:

* ``renew`` keeps this engine's lease (a killed engine's lease runs out within the lease time), claims engines
  whose lease ran out (their announcement is deleted, their join guards become orphans that stay in force) and
  returns what every other live engine announced, plus the orphaned guards.
* ``announce`` replaces what this engine serves and tells the other engines (``notice`` messages).
* ``send`` delivers one message to the engine with that id (``call`` messages at its listener); False when no
  engine listens there (it died or lost its connection): the caller fails at once instead of waiting.
* The listener gets ``("call", bytes)`` for messages sent to this engine and ``("notice", engine id bytes)`` when
  an engine's announcement changed; ``on_gap`` is called after the bus's connection broke and came back
  (messages may have been lost meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CALL", "NOTICE", "BusListener", "ClusterBus", "ClusterView"]

CALL = "call"
NOTICE = "notice"

BusListener = Callable[[str, bytes], None]
"""(kind: ``call`` or ``notice``, message) -> None."""


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a renewal saw: whether this engine's lease was still there, and what the others serve."""

    known: bool
    claimed: int = 0
    peers: dict[str, bytes] = field(default_factory=dict)  # engine id -> announcement JSON
    orphans: dict[str, bytes] = field(default_factory=dict)  # join guard id -> trigger JSON (engine died)


class ClusterBus(Protocol):
    """How engines of one deployment find and reach each other."""

    engine_id: str

    async def start(self, listener: BusListener, on_gap: Callable[[], None]) -> None:
        """Open the connection that receives this engine's messages; raises ``AdapterError`` if unreachable."""

    async def close(self) -> None:
        """Give up the lease (the next renewal of a peer claims it) and release every connection."""

    async def renew(self, lease_ms: int) -> ClusterView:
        """Renew this engine's lease for ``lease_ms``; see the module docstring."""

    async def announce(self, announcement: bytes, dropped_guards: list[str]) -> None:
        """Replace this engine's announcement and drop the given orphaned guards."""

    async def send(self, engine_id: str, message: bytes) -> bool:
        """Deliver ``message`` to an engine; False if no engine listens under that id."""
