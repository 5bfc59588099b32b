"""Presence in the Python SDK: ``subscribe(..., presence=True)`` with typed ``members``, presence events in the
stream, ``client.stream.presence`` (fail closed), and the member list replaced (not merged) across a reconnect."""

from __future__ import annotations

from typing import Any

import pytest

from streamhub.sdk import Backoff, PresenceMember, StreamClient, StreamEvent, SubscriptionError
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import Subscriber, TestWorker, wait_until

FAST = Backoff(initial=0.05, maximum=0.3)


async def auth(data: Any) -> Any:
    names = data["query_params"].get("name")
    return {"context": {"presence": {"name": names[0]} if names else None, "secret": "s"}}


def names(members: list[PresenceMember]) -> list[Any]:
    return [member.info["name"] if member.info else None for member in members]


async def test_members_are_kept_current_and_presence_events_reach_the_callback() -> None:
    async with running(make_config(auth_function="auth")) as srv, TestWorker(worker_url(srv)) as worker:
        await worker.register("auth", auth)
        await worker.call("stream.list_all", {})
        events: list[StreamEvent] = []
        async with StreamClient(f"{stream_url(srv)}?name=ann", backoff=FAST) as ann, \
                StreamClient(f"{stream_url(srv)}?name=bob", backoff=FAST) as bob:
            sub = ann.subscribe("s", "g", events.append, presence=True)
            other = ann.subscribe("s", "g", item_id="x", presence=True)  # needs its own socket: overlapping
            await sub.wait_synced()
            await other.wait_synced()
            await wait_until(lambda: names(sub.members) == ["ann", "ann"], 5)
            watcher = bob.subscribe("s", "g", item_id="x")  # no presence: a member, no presence events
            await watcher.wait_synced()
            await wait_until(lambda: names(sub.members) == ["ann", "ann", "bob"], 5)  # ann has two connections
            assert sub.member_count == 3
            bob_member = sub.members[-1]
            assert bob_member.item_ids == ("x",) and bob_member.subscription_ids == (watcher.id,)
            await wait_until(lambda: len(other.members) == 3, 5)
            watcher.unsubscribe()
            await wait_until(lambda: names(sub.members) == ["ann", "ann"], 5)
            kinds = [(e.event_type, e.event.get("action")) for e in events]
            assert kinds[:2] == [("sync", None), ("presence", "sync")]  # the presence sync follows the join's
            assert ("presence", "join") in kinds and kinds[-1] == ("presence", "leave")
            assert "secret" not in str(events)  # only the presence field of the auth context is shown


async def test_presence_request_answers_or_is_refused() -> None:
    refusing = {"on": False}

    async def guard(data: Any) -> Any:
        return {"unauthorized": refusing["on"]}

    async with running(make_config(auth_function="auth")) as srv, TestWorker(worker_url(srv)) as worker:
        await worker.register("auth", auth)
        await worker.register("guard", guard)
        await worker.trigger("stream_join", "guard", {})
        await worker.call("stream.list_all", {})
        async with StreamClient(f"{stream_url(srv)}?name=ann", backoff=FAST) as ann, \
                StreamClient(f"{stream_url(srv)}?name=eve", backoff=FAST) as eve:
            await ann.subscribe("s", "g").wait_synced()
            answer = await eve.presence("s", "g")
            assert (answer.count, names(answer.members), answer.truncated) == (1, ["ann"], False)
            refusing["on"] = True
            with pytest.raises(SubscriptionError) as refused:
                await eve.presence("s", "g")
            assert (refused.value.code, refused.value.reason) == ("unauthorized", "refused")
            assert (await ann.presence("s", "g")).count == 1  # subscribed: no guard asked


async def test_a_reconnect_replaces_the_member_list() -> None:
    async with running(make_config()) as srv:
        async with StreamClient(stream_url(srv), backoff=FAST) as client, Subscriber(stream_url(srv)) as gone:
            sub = client.subscribe("s", "g", presence=True)
            await sub.wait_synced()
            await gone.join("s", "g", sub_id="gone")
            await wait_until(lambda: len(sub.members) == 2, 5)
            before = {member.connection_id for member in sub.members}
            assert srv.clients is not None
            await srv.clients.close_all()  # both sockets close; only the SDK comes back
            await wait_until(lambda: len(sub.members) == 1 and sub.members[0].connection_id not in before, 10)
            assert sub.members[0].subscription_ids == (sub.id,) and sub.member_count == 1
