"""Strict YAML reading for ``config.yaml``: ``${VAR}`` expansion, duplicate keys refused, and ``Section``, a mapping
that knows its key path so every error names the key (``modules[0].config.port: ...``) in one line.

Kept apart from ``config`` so that module holds only what the engine's configuration is, not how text is read.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import yaml

from streamhub.errors import ConfigError

__all__ = ["Section", "expand_env", "parse_yaml", "show"]


_ENV_PATTERN = re.compile(r"\$\{([^}:]+)(?::([^}]*))?\}")


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:default}`` in the raw text, as the reference does before parsing YAML.

    It is textual (comments included, no quoting of the substituted value, no nesting, ``$VAR`` untouched)
    so that a config behaves the same under streamhub and iii. A variable that is set, even to "", wins over
    the default. An unset ``${VAR}`` without default raises ConfigError naming it and its line (iii panics).
    """

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        line = text.count("\n", 0, match.start()) + 1
        raise ConfigError(
            f"line {line}: environment variable {name} is not set and ${{{name}}} has no default "
            f"(set it, or write ${{{name}:default}})"
        )

    return _ENV_PATTERN.sub(substitute, text)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys; PyYAML keeps the last one silently (a second ``modules:`` would
    drop the first list without a word)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue  # merge keys may legitimately override; complex keys are PyYAML's to reject
        key = loader.construct_object(key_node)
        if key in seen:
            problem = f"found duplicate key {key!r}"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> object:
    """Parse YAML, turning PyYAML's multi-line errors into ``<source>: line N: <problem>``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{source}: {where}{problem or 'invalid YAML'}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {str(exc).splitlines()[0]}") from None


def show(value: object) -> str:
    """Render a config value for an error message the way the user wrote it in YAML."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


class Section:
    """One YAML mapping being read, plus its key path (``modules[0].config``) for error messages.

    A key that is absent or null takes its default, so ``${VAR:}`` can mean "use the default".
    """

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {show(data)}")
        self.data: Mapping[object, object] = data
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ConfigError(f"{self.key(name)}: {problem}")

    def get(self, name: str) -> object:
        return self.data.get(name)

    def reject_unknown(self, accepted: Iterable[str]) -> None:
        """Fail on the first key not in ``accepted``: a typo must not fall back to a default silently."""
        allowed = sorted(accepted)
        for raw in self.data:
            name = str(raw)
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                self.fail(name, f"unknown key{hint} (accepted: {', '.join(allowed)})")

    def integer(self, name: str, default: int, low: int = 1, high: int | None = None) -> int:
        """An int in ``[low, high]``; a string of digits counts (quoted values after env expansion)."""
        value = self.get(name)
        if value is None:
            return default
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
            number = int(value.strip())
        if number is None or number < low or (high is not None and number > high):
            wanted = f"from {low} to {high}" if high is not None else f">= {low}"
            self.fail(name, f"expected an integer {wanted}, got {show(value)}")
        return number

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, 1, 65535)

    def text(self, name: str, default: str) -> str:
        """A non-empty string (hosts, paths, URLs)."""
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(name, f"expected a non-empty string, got {show(value)}")
        return value

    def optional_text(self, name: str) -> str | None:
        """A string or nothing; "" also means nothing so ``${AUTH_FUNCTION:}`` can turn a feature off."""
        value = self.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.fail(name, f"expected a string, got {show(value)}")
        return value

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        value = self.get(name)
        if value is None:
            return default
        options = list(choices)
        if value not in options:
            self.fail(name, f"expected one of {', '.join(options)}, got {show(value)}")
        return value

    def text_list(self, name: str) -> tuple[str, ...]:
        value = self.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(name, f"expected a list of strings, got {show(value)}")
        return tuple(value)

    def section(self, name: str) -> Section:
        value = self.get(name)
        if value is not None and not isinstance(value, Mapping):
            self.fail(name, f"expected a mapping, got {show(value)}")
        return Section(value, self.key(name))
