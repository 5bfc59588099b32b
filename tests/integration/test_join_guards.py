"""Join guards fail closed: every way a ``stream_join`` trigger can fail to judge refuses the join, with a reason.

Also: a guard outlives the worker that registered it until that function is served again or the trigger is
unregistered, and no worker can take over a built-in trigger type.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from streamhub.transport.server import Server
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker, timeout, wait_until

SECRET = "s3cr3t-token"


async def _guard(worker: TestWorker, function_id: str, handler: Any, trigger_id: str = "guard",
                 group: str | None = None) -> None:
    """Register ``handler`` as a join guard of stream ``chat`` under a fixed trigger id (as SDKs re-send it)."""
    await worker.register(function_id, handler)
    config = {"stream_name": "chat"} | ({"group_id": group} if group else {})
    await worker.send({"type": "registertrigger", "id": trigger_id, "trigger_type": "stream_join",
                       "function_id": function_id, "config": config})
    await worker.call("stream.list_all", {})  # frames of one worker are applied in order: registered now


async def _answer(sub: Subscriber, group: str, sub_id: str = "s1") -> dict[str, Any]:
    """Join ``chat/group`` and return the engine's answer (sync, unauthorized or error)."""
    await sub.join("chat", group, sub_id=sub_id)
    return await sub.next()


async def _assert_refused(sub: Subscriber, group: str, reason: str, writer: TestWorker) -> None:
    """The join is refused with ``reason`` and the client gets nothing of the group afterwards."""
    answer = await _answer(sub, group)
    assert answer["event"] == {"type": "unauthorized", "reason": reason}
    assert (answer["groupId"], answer["subscriptionId"]) == (group, "s1")
    await writer.call("stream.set", {"stream_name": "chat", "group_id": group, "item_id": "m", "data": 1})
    await sub.join("open", "g", sub_id="probe")
    probe = await sub.next()
    assert probe["streamName"] == "open" and probe["event"]["type"] == "sync"  # nothing of the group came first


@pytest.mark.parametrize(("answer", "reason"), [
    ({"unauthorized": True}, "refused"),
    ({"unauthorized": 1}, "refused"),
    ({"unauthorized": "true"}, "refused"),
    ({"unauthorized": None}, "refused"),
    ({"unauthorized": False}, None),
    ({}, None),
    (None, None),
    (True, None),
    (False, "guard_failed"),
    (0, "guard_failed"),
    ("yes", "guard_failed"),
    ([], "guard_failed"),
])
async def test_guard_answers_admit_only_a_clear_yes(server: Server, answer: Any, reason: str | None) -> None:
    async def guard(event: Any) -> Any:
        return answer

    async with TestWorker(worker_url(server)) as worker, Subscriber(stream_url(server)) as sub:
        await _guard(worker, "chat::guard", guard)
        if reason is None:
            assert (await _answer(sub, "g"))["event"] == {"type": "sync", "data": []}
        else:
            await _assert_refused(sub, "g", reason, worker)


async def test_guard_that_raises_times_out_or_is_unregistered_refuses_and_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def failing(event: Any) -> Any:
        raise RuntimeError("handler bug on odd input")

    async def slow(event: Any) -> Any:
        await release.wait()

    async def admit(event: Any) -> Any:
        return {}

    caplog.set_level(logging.WARNING, logger="streamhub")
    async with running(make_config(join_timeout_ms=300)) as srv, TestWorker(worker_url(srv)) as worker, \
            Subscriber(stream_url(srv) + f"?token={SECRET}") as sub:
        await _guard(worker, "g::failing", failing, "t-failing", group="failing")
        await _guard(worker, "g::slow", slow, "t-slow", group="slow")
        await _guard(worker, "g::gone", admit, "t-gone", group="gone")
        await worker.send({"type": "unregisterfunction", "id": "g::gone"})
        await worker.call("stream.list_all", {})
        await _assert_refused(sub, "failing", "guard_failed", worker)
        await _assert_refused(sub, "slow", "guard_timeout", worker)
        await _assert_refused(sub, "gone", "guard_unavailable", worker)
        release.set()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "join of" in r.getMessage()]
    assert len(warnings) == 3
    for text, (group, reason) in zip(warnings, [("failing", "guard_failed"), ("slow", "guard_timeout"),
                                                ("gone", "guard_unavailable")], strict=True):
        assert f"'chat'/'{group}'" in text and reason in text and f"t-{group}" in text and f"g::{group}" in text
    assert "handler bug on odd input" in warnings[0]
    assert not any(SECRET in r.getMessage() for r in caplog.records)


async def test_guard_stays_in_force_while_its_worker_is_away(server: Server,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    async def guard(event: Any) -> Any:
        calls.append(event["group_id"])
        return {"unauthorized": event["group_id"] == "secret"}

    async with TestWorker(worker_url(server)) as writer, Subscriber(stream_url(server)) as sub:
        async with TestWorker(worker_url(server)) as first:
            await _guard(first, "chat::guard", guard, "join-guard")
            await _assert_refused(sub, "secret", "refused", writer)
        await wait_until(lambda: not server.engine.functions.exists("chat::guard"))
        assert any(r.levelno == logging.WARNING and "join guard join-guard (function chat::guard) stays in force"
                   in r.getMessage() for r in caplog.records)
        await _assert_refused(sub, "public", "guard_unavailable", writer)  # the guard still covers chat/*
        async with TestWorker(worker_url(server)) as again:  # a new connection re-registers the same trigger
            await _guard(again, "chat::guard", guard, "join-guard")
            await _assert_refused(sub, "secret", "refused", writer)
            assert (await _answer(sub, "public", "s2"))["event"]["type"] == "sync"
            assert calls == ["secret", "secret", "public"]  # one guard, asked once per join
            await again.send({"type": "unregistertrigger", "id": "join-guard", "trigger_type": "stream_join"})
            await again.call("stream.list_all", {})
            assert (await _answer(sub, "secret", "s3"))["event"]["type"] == "sync"  # explicitly removed: open
            assert calls == ["secret", "secret", "public"]


async def test_guard_registered_again_under_a_new_id_replaces_its_orphan(server: Server) -> None:
    calls: list[str] = []

    async def guard(event: Any) -> Any:
        calls.append(event["subscription_id"])
        return {}

    async with TestWorker(worker_url(server)) as writer, Subscriber(stream_url(server)) as sub:
        async with TestWorker(worker_url(server)) as first:
            await _guard(first, "chat::guard", guard, "old-id")
            await _guard(first, "chat::other", guard, "other-filter", group="vip")
        await wait_until(lambda: not server.engine.functions.exists("chat::guard"))
        async with TestWorker(worker_url(server)) as again:
            await _guard(again, "chat::guard", guard, "new-id")
            assert (await _answer(sub, "g", "s1"))["event"]["type"] == "sync"
            assert calls == ["s1"]  # the orphan with the same function and filter is gone, not asked twice
            await _assert_refused(sub, "vip", "guard_unavailable", writer)  # a different filter stays orphaned


@pytest.mark.parametrize("reserved", ["stream", "stream_join", "stream_leave", "stream:join", "stream:leave", "http"])
async def test_builtin_trigger_types_cannot_be_taken_over(server: Server, reserved: str) -> None:
    async def deny(event: Any) -> Any:
        return {"unauthorized": True}

    async with TestWorker(worker_url(server)) as thief, TestWorker(worker_url(server)) as owner, \
            Subscriber(stream_url(server)) as sub:
        await thief.send({"type": "registertriggertype", "id": reserved, "description": "mine now"})
        error = await asyncio.wait_for(thief.other.get(), timeout(5))
        assert error["type"] == "error" and error["error"]["code"] == "reserved_trigger_type"
        assert reserved in error["error"]["message"]
        await thief.call("stream.list_all", {})
        await _guard(owner, "chat::deny", deny)
        await _assert_refused(sub, "g", "refused", owner)  # the built-in still guards
        assert thief.other.empty()  # no registration was forwarded to the would-be owner


async def test_subscriptions_per_connection_are_capped() -> None:
    async with running(make_config(max_subscriptions_per_connection=3)) as srv, \
            Subscriber(stream_url(srv)) as sub, Subscriber(stream_url(srv)) as other:
        for n in range(3):
            assert (await _answer(sub, f"g{n}", f"s{n}"))["event"]["type"] == "sync"
        over = await _answer(sub, "g3", "s3")
        assert over["type"] == "error" and over["subscriptionId"] == "s3"
        assert over["error"]["code"] == "too_many_subscriptions"
        assert "'s3'" in over["error"]["message"] and "max_subscriptions_per_connection (3)" in over["error"]["message"]
        assert (await _answer(sub, "g9", "s0"))["event"]["type"] == "sync"  # re-joining an open id replaces it
        assert (await _answer(other, "g0", "s0"))["event"]["type"] == "sync"  # the cap is per connection
        await sub.leave("chat", "g1", "s1")
        assert (await _answer(sub, "g3", "s3"))["event"]["type"] == "sync"  # room again after a leave
        assert (await _answer(sub, "g4", "s4"))["type"] == "error"
