"""Atomic update ops for ``stream.update`` (placeholder: being written)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["UpdateOp", "apply_ops", "parse_ops"]


class UpdateOp:
    """One parsed op."""


def parse_ops(raw: object) -> list[UpdateOp]:
    raise NotImplementedError


def apply_ops(current: Any, exists: bool, ops: Sequence[UpdateOp]) -> Any:
    raise NotImplementedError
