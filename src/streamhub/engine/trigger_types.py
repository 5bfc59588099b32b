"""Trigger types that workers define (``registertriggertype``) and the bindings other workers make to them.

A worker-defined type has one provider: the worker that registered it last. The engine keeps every binding
(a ``registertrigger`` of that type) and hands it to the provider as the same ``registertrigger`` frame. As in
iii, bindings do not depend on the order workers connect in, nor on the provider staying connected:

- a binding registered while nobody provides its type is held, and forwarded when a provider registers the type;
- a provider that registers the type (again: after a reconnect, or a new process) is sent every binding of it;
- a provider that leaves or unregisters the type: its bindings are held for the next provider;
- a binding whose worker leaves, or that is unregistered by id: the provider gets ``unregistertrigger``;
- a provider that refuses a binding (``triggerregistrationresult`` with an error): the refusal is passed on to
  the binding's worker, and the binding is held until the type is registered again.

Held bindings never fire (nobody could fire them) and are not listed by ``engine::registered-triggers::list``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streamhub.engine.functions import WorkerLink
from streamhub.protocol.worker_messages import (
    RegisterTrigger,
    RegisterTriggerType,
    TriggerRegistrationResult,
    UnregisterTrigger,
)

__all__ = ["Binding", "Provider", "WorkerTriggerTypes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Provider:
    """A trigger type and the worker that serves it."""

    type_id: str
    worker: WorkerLink
    description: str | None = None
    trigger_request_format: Any = None
    call_request_format: Any = None


@dataclass(slots=True)
class Binding:
    """A ``registertrigger`` of a worker-defined type; ``live`` once its current provider has been sent it."""

    message: RegisterTrigger
    owner: WorkerLink
    live: bool = False


class WorkerTriggerTypes:
    """Providers of worker-defined trigger types and every binding to them, live or held."""

    def __init__(self) -> None:
        self._providers: dict[str, Provider] = {}
        self._bindings: dict[str, Binding] = {}

    def provides(self, type_id: str) -> bool:
        """True if a connected worker serves ``type_id``."""
        return type_id in self._providers

    def providers(self) -> list[Provider]:
        """Every type a connected worker serves."""
        return list(self._providers.values())

    def live(self) -> list[Binding]:
        """The bindings their provider has been sent (the ones that can fire)."""
        return [b for b in self._bindings.values() if b.live]

    def provide(self, worker: WorkerLink, message: RegisterTriggerType) -> int:
        """Make ``worker`` the provider of ``message.id`` and send it every binding of the type; returns how many."""
        self._providers[message.id] = Provider(message.id, worker, message.description,
                                               message.trigger_request_format, message.call_request_format)
        bindings = self._of_type(message.id)
        for binding in bindings:
            worker.send(binding.message)
            binding.live = True
        log.info("worker %s provides trigger type %s; %d bindings sent to it", worker.worker_id, message.id,
                 len(bindings))
        return len(bindings)

    def withdraw(self, worker: WorkerLink, type_id: str) -> bool:
        """``worker`` no longer serves ``type_id`` (if it still was the provider): its bindings are held."""
        provider = self._providers.get(type_id)
        if provider is None or provider.worker is not worker:
            return False
        del self._providers[type_id]
        held = self._of_type(type_id)
        for binding in held:
            binding.live = False
        if held:
            log.warning("trigger type %s has no provider any more (worker %s); %d bindings are held until a "
                        "worker registers it again", type_id, worker.worker_id, len(held))
        return True

    def bind(self, worker: WorkerLink, message: RegisterTrigger) -> None:
        """Keep a binding (replacing one with the same id) and forward it to the type's provider, if any."""
        previous = self._bindings.get(message.id)
        if previous is not None and previous.message.trigger_type != message.trigger_type:
            self._detach(previous)
        binding = Binding(message, worker)
        self._bindings[message.id] = binding
        provider = self._providers.get(message.trigger_type)
        if provider is None:
            log.warning("trigger %s (function %s) is held: no worker provides trigger type %s yet; it is "
                        "forwarded when one registers it", message.id, message.function_id, message.trigger_type)
            return
        provider.worker.send(message)
        binding.live = True

    def unbind(self, trigger_id: str) -> bool:
        """Forget a binding, telling its provider if it had been sent it; False if there was none."""
        binding = self._bindings.pop(trigger_id, None)
        if binding is None:
            return False
        self._detach(binding)
        return True

    def refused(self, worker: WorkerLink, message: TriggerRegistrationResult) -> None:
        """A provider's answer to a forwarded binding: a refusal goes to the binding's worker; others are ignored.

        Only the binding's current provider is heard, so no worker can tear out another worker's binding.
        """
        binding = self._bindings.get(message.id)
        if binding is None or message.error is None:
            return
        provider = self._providers.get(binding.message.trigger_type)
        if provider is None or provider.worker is not worker:
            log.debug("worker %s answered trigger %s it does not provide; ignored", worker.worker_id, message.id)
            return
        binding.live = False
        log.warning("trigger %s (%s) refused by its provider %s: %s; held until the type is registered again",
                    message.id, binding.message.trigger_type, worker.worker_id, message.error)
        binding.owner.send(TriggerRegistrationResult(
            id=message.id, trigger_type=binding.message.trigger_type, function_id=binding.message.function_id,
            error=message.error))

    def worker_left(self, worker: WorkerLink) -> tuple[int, int]:
        """Withdraw the types ``worker`` served and unbind its bindings; returns (types, bindings) removed."""
        types = [p.type_id for p in self._providers.values() if p.worker is worker]
        for type_id in types:
            self.withdraw(worker, type_id)
        mine = [trigger_id for trigger_id, b in self._bindings.items() if b.owner is worker]
        for trigger_id in mine:
            self.unbind(trigger_id)
        return len(types), len(mine)

    def _of_type(self, type_id: str) -> list[Binding]:
        return [b for b in self._bindings.values() if b.message.trigger_type == type_id]

    def _detach(self, binding: Binding) -> None:
        """Tell the provider that had ``binding`` to drop it."""
        if not binding.live:
            return
        binding.live = False
        provider = self._providers.get(binding.message.trigger_type)
        if provider is not None:
            provider.worker.send(UnregisterTrigger(id=binding.message.id, trigger_type=binding.message.trigger_type))
