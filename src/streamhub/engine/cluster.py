"""One function namespace across the engines of a deployment: announcements, leases and routed calls.

Why it looks like this (design and guarantees in docs/cluster.md):

* Each engine announces the function ids its workers serve and its triggers (``cluster_triggers.py``) through
  the bus, under a lease it renews every quarter of ``lease``; a renewal also returns every other live engine's
  announcement, so this engine's view is never older than a quarter lease, and a notice from an engine that
  changed its announcement makes the others renew at once.
* ``Engine.call`` resolves locally first; only an id no local worker or builtin answers is routed: to one of the
  engines announcing it (round robin), as one message on that engine's channel carrying the caller's remaining
  time. The serving engine calls it locally with that timeout and answers on the caller's channel with the
  result or the error's wire body, which the caller raises again as the same error class and code.
* A call never outlives its timeout. It fails with ``engine_unreachable`` at once when no engine listens on the
  target's channel, when a renewal finds the target's lease gone (kill -9: within the lease), or when this
  engine's own connection to the bus broke (answers may have been lost). Redis down: ``adapter_error`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from streamhub.adapters.cluster import NOTICE, ClusterBus, ClusterView
from streamhub.core.triggers import TriggerIndex
from streamhub.engine.cluster_triggers import TriggerReplica
from streamhub.engine.functions import NO_RESULT, Builtin, FunctionRegistry
from streamhub.errors import (
    AdapterError,
    EngineUnreachable,
    FunctionNotFound,
    InvalidRequest,
    InvocationError,
    InvocationStopped,
    InvocationTimeout,
    StreamhubError,
)

__all__ = ["Cluster", "LocalCall"]

log = logging.getLogger(__name__)

LocalCall = Callable[[str, Any, float], Awaitable[Any]]
"""(function id, data, timeout in seconds) -> result: a call answered by this engine only."""


class Cluster:
    """This engine's part of the cluster.

    Args:
        bus: the link to the other engines (``adapters.cluster``).
        functions, triggers: this engine's registries (announced; remote triggers are added to ``triggers``).
        call_local: answers routed calls from other engines.
        lease: seconds a killed engine's functions and triggers outlive it at most.
    """

    def __init__(self, bus: ClusterBus, functions: FunctionRegistry, triggers: TriggerIndex,
                 call_local: LocalCall, *, lease: float) -> None:
        self.bus = bus
        self.engine_id = bus.engine_id
        self.lease = lease
        self._functions = functions
        self._call_local = call_local
        self._replica = TriggerReplica(triggers)
        self._served: dict[str, list[str]] = {}  # function id -> other engines announcing it
        self._turn = itertools.count()
        self._pending: dict[str, tuple[asyncio.Future[Any], str]] = {}  # call id -> (answer, target engine)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()  # renew now (a peer's announcement changed)
        self._announced: bytes | None = None
        self._garbage: tuple[str, bytes] | None = None  # the last undecodable announcement logged
        self._announcing = False
        self._renewer: asyncio.Task[None] | None = None
        self.routed = 0  # calls this engine routed to others (tests, logs)
        self.served = 0  # calls other engines routed to this one

    # Lifecycle

    async def start(self) -> None:
        """Listen on this engine's channel, take a lease and read the others, announce, keep renewing."""
        await self.bus.start(self._message, self._gap)
        await self._renew_once()
        await self._announce()
        self._renewer = asyncio.create_task(self._renew_forever(), name="streamhub-cluster-lease")

    async def close(self) -> None:
        """Stop renewing, fail the calls in flight, give up the lease."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        self._fail_pending(lambda _: True, "this engine is stopping")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.close()

    # Namespace

    def serves(self, function_id: str) -> bool:
        """True if another engine announces ``function_id``."""
        return function_id in self._served

    def engines(self) -> dict[str, list[str]]:
        """Function id -> the other engines serving it (a copy; console, tests)."""
        return {function_id: list(engines) for function_id, engines in self._served.items()}

    def changed(self) -> None:
        """This engine's functions or triggers changed: announce them (once per burst)."""
        if not self._announcing:
            self._announcing = True
            self._spawn(self._announce_later())

    def route(self, function_id: str, timeout: float) -> Builtin:
        """A handler that calls ``function_id`` on another engine; ``FunctionNotFound`` if none serves it."""
        if function_id not in self._served:
            raise FunctionNotFound(function_id)

        async def routed(data: Any) -> Any:
            return await self.call(function_id, data, timeout)

        return routed

    async def call(self, function_id: str, data: Any, timeout: float) -> Any:
        """Call ``function_id`` on one of the engines serving it; see the module docstring for how it fails.

        An engine that did not run the call (nobody listens on its channel, or its worker left a moment ago:
        ``function_not_found``) hands it to the next engine serving the id, within the same timeout.
        """
        engines = self._served.get(function_id)
        if not engines:
            raise FunctionNotFound(function_id)
        first = next(self._turn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                for attempt in range(len(engines)):
                    target = engines[(first + attempt) % len(engines)]
                    try:
                        return await self._call_on(target, function_id, data, deadline - loop.time())
                    except (FunctionNotFound, _NotDelivered) as exc:
                        if attempt == len(engines) - 1:
                            raise exc.error if isinstance(exc, _NotDelivered) else exc from None
        except TimeoutError:
            raise InvocationTimeout(f"Function {function_id} did not answer within {timeout:g} s") from None
        raise FunctionNotFound(function_id)  # not reached: the last attempt returns or raises

    async def _call_on(self, target: str, function_id: str, data: Any, remaining: float) -> Any:
        call_id = uuid.uuid4().hex
        try:
            message = orjson.dumps({"q": call_id, "f": function_id, "d": data, "t": max(1, int(remaining * 1000)),
                                    "r": self.engine_id})
        except TypeError as exc:
            raise InvalidRequest(f"cannot route a call of {function_id}: its data is not JSON: {exc}") from None
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = (answer, target)
        self.routed += 1
        try:
            if not await self.bus.send(target, message):
                raise _NotDelivered(EngineUnreachable(f"Function {function_id}: engine {target} serving it is "
                                                      "unreachable (stopped, or cut off from Redis)"))
            return await answer
        finally:
            self._pending.pop(call_id, None)

    # Messages

    def _message(self, kind: str, raw: bytes) -> None:
        if kind == NOTICE:
            if raw.decode(errors="replace") != self.engine_id:
                self._wake.set()
            return
        try:
            message = orjson.loads(raw)
            if "a" in message:
                self._answer(message)
            else:
                self._spawn(self._serve(str(message["q"]), str(message["f"]), message.get("d"),
                                        float(message["t"]) / 1000, str(message["r"])))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping an undecodable cluster message: %s", exc)

    def _answer(self, message: dict[str, Any]) -> None:
        entry = self._pending.get(str(message["a"]))
        if entry is None or entry[0].done():
            return  # answered after its timeout
        if "e" in message:
            entry[0].set_exception(_error(message["e"]))
        else:
            entry[0].set_result(message.get("v", NO_RESULT))

    async def _serve(self, call_id: str, function_id: str, data: Any, timeout: float, reply_to: str) -> None:
        self.served += 1
        answer: dict[str, Any] = {"a": call_id}
        try:
            result = await self._call_local(function_id, data, timeout)
            if result is not NO_RESULT:
                answer["v"] = result
            encoded = orjson.dumps(answer)
        except StreamhubError as exc:
            encoded = orjson.dumps({"a": call_id, "e": exc.to_wire()})
        except Exception as exc:  # a result orjson refuses, or a bug: the caller gets an error, never silence
            log.exception("routed call of %s failed", function_id)
            encoded = orjson.dumps({"a": call_id, "e": {"code": "invocation_failed",
                                                         "message": f"internal error: {type(exc).__name__}"}})
        try:
            await self.bus.send(reply_to, encoded)
        except AdapterError as exc:
            log.warning("answer to a routed call of %s lost: %s", function_id, exc.message)

    def _gap(self) -> None:
        """The bus connection broke and came back: answers may be lost, and the view may be stale."""
        self._fail_pending(lambda _: True, "the connection to Redis broke while it was in flight")
        self._wake.set()

    def _fail_pending(self, which: Callable[[str], bool], why: str) -> None:
        for answer, target in list(self._pending.values()):
            if which(target) and not answer.done():
                answer.set_exception(EngineUnreachable(f"routed call to engine {target} failed: {why}"))

    # Lease and announcements

    async def _renew_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it may swallow a cancel (close)
                async with asyncio.timeout(self.lease / 4):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._renew_once()
            except AdapterError as exc:
                log.warning("cluster lease of engine %s not renewed: %s", self.engine_id, exc.message)
            except Exception:  # never let a bug end the lease: the engine would drop out of the cluster
                log.exception("cluster lease of engine %s: renewal failed", self.engine_id)

    async def _renew_once(self) -> None:
        view = await self.bus.renew(int(self.lease * 750))  # ms: 3/4 of the lease, renewed every 1/4
        if view.claimed:
            log.info("cluster: %d engines whose lease ran out were removed", view.claimed)
        self._apply(view)
        if not view.known:
            self._announced = None  # Redis lost this engine's announcement (restart) or claimed it: say it again
        if self._announced is None or self._replica.dropped:
            await self._announce()

    def _apply(self, view: ClusterView) -> None:
        peers: dict[str, dict[str, Any]] = {}
        for engine_id, raw in view.peers.items():
            try:
                announcement = orjson.loads(raw)
            except ValueError:
                announcement = None
            if isinstance(announcement, dict):
                peers[engine_id] = announcement
            elif self._garbage != (engine_id, raw):
                self._garbage = (engine_id, raw)
                log.error("cluster: engine %s announced something that is not an announcement; ignored", engine_id)
        served: dict[str, list[str]] = {}
        for engine_id in sorted(peers):
            functions = peers[engine_id].get("functions")
            for function_id in functions if isinstance(functions, list) else ():
                served.setdefault(str(function_id), []).append(engine_id)
        self._served = served
        self._fail_pending(lambda target: target not in peers, "its lease ran out (the engine died)")
        self._replica.apply(peers, view.orphans)

    async def _announce_later(self) -> None:
        await asyncio.sleep(0)  # one announcement for a burst of registrations
        self._announcing = False
        try:
            await self._announce()
        except AdapterError as exc:
            self._announced = None  # the next renewal tries again
            log.warning("cluster: announcement of engine %s failed: %s", self.engine_id, exc.message)

    async def _announce(self) -> None:
        self._replica.vanished()
        announcement = orjson.dumps({"functions": sorted(self._functions.remote()),
                                     "triggers": self._replica.local()})
        dropped = sorted(self._replica.dropped)
        if announcement == self._announced and not dropped:
            return
        await self.bus.announce(announcement, dropped)
        self._announced = announcement
        self._replica.dropped.difference_update(dropped)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _NotDelivered(Exception):
    """No engine listened on the target's channel: the call was not run there (another engine may take it)."""

    def __init__(self, error: EngineUnreachable) -> None:
        super().__init__(error.message)
        self.error = error


_CLASSES: dict[str, type[InvocationError]] = {
    InvocationTimeout.code: InvocationTimeout, InvocationStopped.code: InvocationStopped,
    EngineUnreachable.code: EngineUnreachable,
}


def _error(wire: Any) -> StreamhubError:
    """The error a serving engine sent back, as the same class (so callers branch on it) and the same code."""
    code = str(wire.get("code") or "invocation_failed") if isinstance(wire, dict) else "invocation_failed"
    message = str(wire.get("message", "invocation failed")) if isinstance(wire, dict) else str(wire)
    if code == FunctionNotFound.code:
        error: StreamhubError = FunctionNotFound("")
        error.message = message
        error.args = (message,)
        return error
    if code.startswith("invalid_"):
        return InvalidRequest(message, code=code)
    if code == AdapterError.code:
        return AdapterError(message, temporary=True)
    return _CLASSES.get(code, InvocationError)(message, code=code)
