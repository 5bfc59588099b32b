"""Validation of stream, group and item names.

Names may hold any printable character (``:``, ``/``, ``*`` and unicode included): adapters must store them
literally. What is refused is what no sane key holds: empty strings, control characters, very long names.
"""

from __future__ import annotations

import re

from streamhub.errors import InvalidName

__all__ = ["MAX_NAME_LENGTH", "validate_name"]

MAX_NAME_LENGTH = 256
"""Longest accepted name, in characters."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_name(field: str, value: object) -> str:
    """Return ``value`` if it is a valid name, else raise.

    Args:
        field: the input field being checked (``stream_name``, ``group_id``, ...), named in the error.
        value: the candidate name.

    Raises:
        InvalidName: saying which field is wrong and why.
    """
    if not isinstance(value, str):
        raise InvalidName(f"{field} must be a string, got {_type_name(value)}")
    if not value:
        raise InvalidName(f"{field} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidName(f"{field} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}")
    match = _CONTROL.search(value)
    if match is not None:
        raise InvalidName(f"{field} holds a control character (U+{ord(match.group()):04X}) at {match.start()}")
    return value


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__
