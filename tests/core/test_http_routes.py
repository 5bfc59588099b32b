"""http trigger routes: parsing both config spellings and matching the most specific pattern."""

from __future__ import annotations

import pytest

from streamhub.core.http_routes import RouteTable, parse_route
from streamhub.errors import InvalidRequest


def test_both_spellings_and_case_insensitive_methods() -> None:
    assert parse_route("t", "f", {"path": "/a", "method": "post"}).method == "POST"
    assert parse_route("t", "f", {"api_path": "/a", "http_method": "DELETE"}).method == "DELETE"
    assert parse_route("t", "f", {"path": "/a"}).method == "GET"


@pytest.mark.parametrize("config", [{}, {"path": "a"}, {"path": 3}, {"path": "/a", "method": "FETCH"},
                                    {"path": "/a/:"}])
def test_bad_configs_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        parse_route("t", "f", config)


def test_most_literal_route_wins_and_params_bind() -> None:
    table = RouteTable()
    table.add(parse_route("by-id", "get", {"path": "/todos/:id"}))
    table.add(parse_route("done", "done", {"path": "/todos/done"}))
    table.add(parse_route("nested", "n", {"path": "/users/:user/todos/:id", "method": "PATCH"}))
    match = table.match("GET", "/todos/done")
    assert match is not None and match.route.function_id == "done"
    match = table.match("GET", "/todos/7/")
    assert match is not None and match.params == {"id": "7"}
    match = table.match("PATCH", "/users/u/todos/1")
    assert match is not None and match.params == {"user": "u", "id": "1"}
    assert table.match("POST", "/todos/7") is None and table.methods_for("/todos/7") == ["GET"]
    table.remove("by-id")
    assert table.match("GET", "/todos/7") is None
