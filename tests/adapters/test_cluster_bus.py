"""The engines' bus (``adapters/cluster.py`` contract, ``redis_cluster.RedisClusterBus``) on a single Redis and on
a real 3-primary Redis Cluster: leases, announcements and notices, messages to an engine (and False for an engine
nobody listens for), a closed engine claimed with its join guards orphaned, and the registry's shared pipe.
Engines in whole servers over the bus are in ``tests/integration/test_cluster.py`` and ``test_redis_cluster.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from streamhub.adapters.cluster import CALL, NOTICE
from streamhub.adapters.redis import RedisAdapter
from streamhub.adapters.redis_cluster import RedisClusterBus
from streamhub.adapters.registry import build_adapter, build_cluster
from streamhub.config import REDIS_ADAPTER, AdapterConfig
from tests.helpers import timeout

LEASE_MS = 2000

Start = Callable[[], Awaitable[tuple[RedisClusterBus, "Inbox"]]]


class Inbox:
    """What one bus delivered: messages by kind, and gaps."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.gaps = 0
        self._arrived = asyncio.Event()

    def listener(self, kind: str, message: bytes) -> None:
        self.messages.append((kind, message))
        self._arrived.set()

    def gap(self) -> None:
        self.gaps += 1

    async def until(self, wanted: tuple[str, bytes]) -> None:
        async with asyncio.timeout(timeout(5)):
            while wanted not in self.messages:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture(params=[pytest.param("redis_server", marks=pytest.mark.redis),
                        pytest.param("redis_cluster", marks=pytest.mark.redis_cluster)])
def url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue(request.param).url
    return found


@pytest.fixture
async def buses(url: str, key_prefix: str) -> AsyncIterator[Start]:
    """Starts buses of one deployment; closes them after."""
    started: list[RedisClusterBus] = []

    async def start() -> tuple[RedisClusterBus, Inbox]:
        bus, inbox = RedisClusterBus(url, key_prefix), Inbox()
        await bus.start(inbox.listener, inbox.gap)
        started.append(bus)
        return bus, inbox

    yield start
    for bus in started:
        await bus.close()


def announcement(*functions: str, guards: dict[str, bytes] | None = None) -> bytes:
    triggers = {guard: ["stream:join", config.decode()] for guard, config in (guards or {}).items()}
    return orjson.dumps({"functions": list(functions), "triggers": triggers})


async def test_engines_see_each_others_announcements_and_messages(buses: Start) -> None:
    (a, on_a), (b, on_b) = await buses(), await buses()
    assert (await a.renew(LEASE_MS)).known is False  # a new lease
    assert (await a.renew(LEASE_MS)).known is True
    await a.announce(announcement("math::double"), [])
    await on_b.until((NOTICE, a.engine_id.encode()))
    view = await b.renew(LEASE_MS)
    assert orjson.loads(view.peers[a.engine_id]) == {"functions": ["math::double"], "triggers": {}}
    assert await b.send(a.engine_id, b"hello a") is True
    await on_a.until((CALL, b"hello a"))
    assert await a.send("nobody-listens-here", b"lost") is False
    assert (on_a.gaps, on_b.gaps) == (0, 0)


async def test_a_closed_engine_is_claimed_and_its_join_guards_stay_as_orphans(buses: Start) -> None:
    (a, _), (b, _) = await buses(), await buses()
    await a.renew(LEASE_MS)
    await b.renew(LEASE_MS)
    await a.announce(announcement("f", guards={"guard-1": b'{"function_id":"f"}'}), [])
    assert a.engine_id in (await b.renew(LEASE_MS)).peers
    await a.close()  # gives its lease up: the next renewal of a peer claims it
    assert await b.send(a.engine_id, b"too late") is False
    view = await b.renew(LEASE_MS)
    assert (view.claimed, view.peers, view.orphans) == (1, {}, {"guard-1": b'{"function_id":"f"}'})
    await b.announce(announcement(), ["guard-1"])  # replaced: the orphan goes
    assert (await b.renew(LEASE_MS)).orphans == {}


async def test_the_registry_puts_the_bus_on_the_adapters_pipe(url: str, key_prefix: str) -> None:
    config = AdapterConfig(class_name=REDIS_ADAPTER, redis_url=url, key_prefix=key_prefix)
    adapter = build_adapter(config)
    one, two = build_cluster(config, adapter), build_cluster(config)
    assert isinstance(adapter, RedisAdapter) and isinstance(one, RedisClusterBus) and isinstance(two, RedisClusterBus)
    assert one._pipe is adapter.pipe and two._pipe is not adapter.pipe
    inbox = Inbox()
    await adapter.start(lambda event: None)
    try:
        await one.start(inbox.listener, inbox.gap)
        await two.start(Inbox().listener, lambda: None)
        await one.renew(LEASE_MS)
        assert await two.send(one.engine_id, b"through the shared pipe") is True
        await inbox.until((CALL, b"through the shared pipe"))
        await two.close()
        await one.close()
    finally:
        await adapter.close()
