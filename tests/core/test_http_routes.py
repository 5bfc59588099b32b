"""http trigger routes: both config spellings, path normalisation, precedence and conflicts as the reference's
router has them, and the middleware list."""

from __future__ import annotations

import pytest

from streamhub.core.http_routes import RouteTable, parse_route
from streamhub.errors import InvalidRequest


def table_of(*routes: tuple[str, str, str]) -> RouteTable:
    """A table of ``(trigger id, method, path)`` routes whose function id is the trigger id."""
    table = RouteTable()
    for trigger_id, method, path in routes:
        table.add(parse_route(trigger_id, trigger_id, {"api_path": path, "http_method": method}))
    return table


def served_by(table: RouteTable, method: str, path: str) -> str | None:
    match = table.match(method, path)
    return None if match is None else match.route.trigger_id


def test_both_spellings_and_case_insensitive_methods() -> None:
    assert parse_route("t", "f", {"path": "/a", "method": "post"}).method == "POST"
    assert parse_route("t", "f", {"api_path": "/a", "http_method": "DELETE"}).method == "DELETE"
    assert parse_route("t", "f", {"path": "/a"}).method == "GET"


@pytest.mark.parametrize("config", [{}, {"path": ""}, {"path": 3}, {"path": "/a", "method": "FETCH"},
                                    {"path": "/a/:"}, {"path": "a/:/b"},
                                    {"path": "/a", "middleware_function_ids": "mw::auth"},
                                    {"path": "/a", "middleware_function_ids": ["mw::auth", ""]},
                                    {"path": "/a", "middleware_function_ids": ["mw::auth", 3]},
                                    {"path": "/a", "middleware_function_ids": {"0": "mw::auth"}}])
def test_bad_configs_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        parse_route("t", "f", config)


def test_middleware_ids_keep_their_order() -> None:
    route = parse_route("t", "f", {"api_path": "a", "middleware_function_ids": ["mw::log", "mw::auth"]})
    assert route.middleware == ("mw::log", "mw::auth")
    assert parse_route("t", "f", {"api_path": "a", "middleware_function_ids": None}).middleware == ()
    assert parse_route("t", "f", {"api_path": "a"}).middleware == ()


def test_leading_slash_is_optional_and_handlers_see_the_path_as_registered() -> None:
    table = table_of(("by-id", "GET", "todo/:id"), ("root", "GET", "/"), ("list", "POST", "//todos"))
    match = table.match("GET", "/todo/7")
    assert match is not None and match.params == {"id": "7"} and match.route.pattern == "todo/:id"
    assert served_by(table, "GET", "/") == "root" and served_by(table, "POST", "/todos") == "list"


def test_trailing_slash_and_empty_segments_are_significant() -> None:
    table = table_of(("plain", "GET", "/todos"), ("slash", "GET", "/todos/"), ("by-id", "GET", "/todos/:id"),
                     ("double", "GET", "/a//b"))
    assert served_by(table, "GET", "/todos") == "plain"
    assert served_by(table, "GET", "/todos/") == "slash"  # a parameter never binds an empty segment
    assert served_by(table, "GET", "/todos/7") == "by-id"
    assert served_by(table, "GET", "/todos/7/") is None
    assert served_by(table, "GET", "/a//b") == "double" and served_by(table, "GET", "/a/b") is None


def test_literal_segments_win_from_the_left_and_params_bind() -> None:
    table = table_of(("by-id", "GET", "/todos/:id"), ("done", "GET", "/todos/done"),
                     ("left", "GET", "/a/:x/:y"), ("right", "GET", "/:x/b/c"),
                     ("nested", "PATCH", "/users/:user/todos/:id"))
    assert served_by(table, "GET", "/todos/done") == "done" and served_by(table, "GET", "/todos/7") == "by-id"
    assert served_by(table, "GET", "/a/b/c") == "left"  # not the route with more literals: the leftmost decides
    assert served_by(table, "GET", "/z/b/c") == "right"
    match = table.match("PATCH", "/users/u/todos/1")
    assert match is not None and match.params == {"user": "u", "id": "1"}
    assert table.match("POST", "/todos/7") is None and table.methods_for("/todos/7") == ["GET"]
    table.remove("by-id")
    assert table.match("GET", "/todos/7") is None


def test_same_shape_with_other_parameter_names_is_refused() -> None:
    table = table_of(("first", "GET", "/lists/:userId/:listId"))
    with pytest.raises(InvalidRequest) as refused:
        table.add(parse_route("second", "second", {"api_path": "lists/:listId/:userId"}))
    assert refused.value.code == "route_conflict"
    assert "lists/:listId/:userId" in refused.value.message and "/lists/:userId/:listId" in refused.value.message
    assert "trigger first" in refused.value.message
    match = table.match("GET", "/lists/u/l")
    assert match is not None and match.route.trigger_id == "first" and match.params == {"userId": "u", "listId": "l"}
    # Another method, a literal where the other has a parameter, another length: no conflict.
    for trigger_id, method, path in [("post", "POST", "/lists/:listId/:userId"), ("me", "GET", "/lists/me/:id"),
                                     ("longer", "GET", "/lists/:a/:b/:c")]:
        table.add(parse_route(trigger_id, trigger_id, {"api_path": path, "http_method": method}))
    assert served_by(table, "POST", "/lists/u/l") == "post" and served_by(table, "GET", "/lists/me/l") == "me"


def test_a_trigger_registered_again_replaces_its_own_route() -> None:
    table = table_of(("t1", "GET", "/a/:x"), ("t2", "GET", "/b"))
    table.add(parse_route("t1", "f1", {"api_path": "/a/:y"}))  # same trigger id: no conflict with itself
    match = table.match("GET", "/a/1")
    assert match is not None and match.params == {"y": "1"} and match.route.function_id == "f1"
    table.add(parse_route("t1", "f1", {"api_path": "/c"}))
    assert served_by(table, "GET", "/a/1") is None and served_by(table, "GET", "/c") == "t1"


def test_identical_route_of_another_trigger_takes_over_and_the_earlier_serves_again() -> None:
    table = table_of(("t1", "GET", "/todos/:id"), ("t2", "GET", "todos/:id"))
    assert served_by(table, "GET", "/todos/1") == "t2"
    table.add(parse_route("t1", "t1", {"api_path": "/todos/:id"}))  # registered again: the latest now
    assert served_by(table, "GET", "/todos/1") == "t1"
    table.remove("t1")
    assert served_by(table, "GET", "/todos/1") == "t2"
