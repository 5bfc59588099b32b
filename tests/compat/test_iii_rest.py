"""HTTP endpoints of workers written with the published iii SDKs (PyPI ``iii-sdk==0.25.0``, npm
``iii-sdk@0.22.1``) as iii's examples write them, served by streamhub's REST module: ``api_path`` without a leading
``/``, a handler answering ``text/xml``, an auth middleware that answers 401 and a logging one that passes on, and a
route whose shape conflicts with a registered one refused (the SDKs log the engine's refusal).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from streamhub.config import RestApiConfig
from streamhub.transport.server import Server
from tests.compat.drivers import KINDS, SdkWorker
from tests.conftest import make_config, running, worker_url
from tests.helpers import wait_until

pytestmark = pytest.mark.parametrize("kind", KINDS)


@pytest.fixture
async def api() -> AsyncIterator[Server]:
    async with running(replace(make_config(), rest_api=RestApiConfig(port=0))) as srv:
        yield srv


def url(srv: Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.rest_port}{path}"


async def http_trigger(worker: SdkWorker, function_id: str, **config: object) -> None:
    await worker.result("register_trigger", type="http", function_id=function_id, config=config)


async def test_routes_without_leading_slash_and_a_text_xml_answer(kind: str, api: Server) -> None:
    async with SdkWorker(kind, worker_url(api)) as worker, aiohttp.ClientSession() as http:
        await worker.register("api::todo::get", record=True, **{"return": {
            "status_code": 200, "headers": {"Content-Type": "text/xml"}, "body": "<a/>"}})
        await http_trigger(worker, "api::todo::get", api_path="todo/:id", http_method="GET")
        await worker.register("api::todos::create", record=True,
                              **{"return": {"status_code": 201, "body": {"created": True}}})
        await http_trigger(worker, "api::todos::create", api_path="todos", http_method="POST")
        await worker.settle()

        async with http.get(url(api, "/todo/42")) as response:
            assert response.status == 200 and await response.read() == b"<a/>"
            assert response.headers["Content-Type"] == "text/xml"
        request = (await worker.invoked())["data"]
        assert request["path_params"] == {"id": "42"} and request["path"] == "todo/:id"

        async with http.post(url(api, "/todos"), json={"title": "milk"}) as response:
            assert response.status == 201 and await response.json() == {"created": True}
        assert (await worker.invoked())["data"]["body"] == {"title": "milk"}


async def test_auth_middleware_answers_401_and_logger_passes_on(kind: str, api: Server) -> None:
    async with SdkWorker(kind, worker_url(api)) as worker, aiohttp.ClientSession() as http:
        await worker.register("middleware::logger", record=True, **{"return": {"action": "continue"}})
        await worker.register("middleware::auth", require_authorization="Bearer compat-token")
        await worker.register("api::orders::get", record=True,
                              **{"return": {"status_code": 200, "body": {"order": "ok"}}})
        await http_trigger(worker, "api::orders::get", api_path="orders/:id", http_method="GET",
                           middleware_function_ids=["middleware::logger", "middleware::auth"])
        await worker.settle()

        async with http.get(url(api, "/orders/1")) as response:
            assert response.status == 401 and await response.json() == {"error": "Unauthorized"}
        async with http.get(url(api, "/orders/1"), headers={"Authorization": "Bearer compat-token"}) as response:
            assert response.status == 200 and await response.json() == {"order": "ok"}

        invoked = [await worker.invoked() for _ in range(3)]  # the handler ran for the second request only
        assert [i["invoked"] for i in invoked] == ["middleware::logger", "middleware::logger", "api::orders::get"]
        logged = invoked[0]["data"]
        assert logged["phase"] == "preHandler" and logged["request"]["path_params"] == {"id": "1"}
        assert logged["request"]["method"] == "GET"


async def test_route_conflicting_with_a_registered_shape_is_refused(kind: str, api: Server) -> None:
    async with SdkWorker(kind, worker_url(api)) as worker, aiohttp.ClientSession() as http:
        await worker.register("api::lists::by-user", record=True, **{"return": {"by": "user"}})
        await http_trigger(worker, "api::lists::by-user", api_path="lists/:userId/:listId", http_method="GET")
        await worker.register("api::lists::by-list", record=True, **{"return": {"by": "list"}})
        await http_trigger(worker, "api::lists::by-list", api_path="lists/:listId/:userId", http_method="GET")
        await worker.settle()
        await wait_until(lambda: any("Trigger registration failed" in line
                                     and "conflicts with route GET lists/:userId/:listId" in line
                                     for line in worker.log))

        async with http.get(url(api, "/lists/u/l")) as response:
            assert await response.json() == {"by": "user"}
        request = await worker.invoked()
        assert request["invoked"] == "api::lists::by-user"
        assert request["data"]["path_params"] == {"userId": "u", "listId": "l"}
