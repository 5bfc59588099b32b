"""A worker connected to engine A whose route, function and trigger serve engine B too (docs/cluster.md).

``GET /hello/:name`` is registered here, on engine A, and answered through engine B's REST port; a ``stream``
trigger counts the changes of ``greetings`` whichever engine takes the write (once per change).

Run: python examples/redis/worker.py   (engine A at $STREAMHUB_URL, default ws://127.0.0.1:49134), then
     curl http://127.0.0.1:3111/hello/ann   (engine B's REST port)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from streamhub.sdk import Client, StreamEvent, UpdateOp

client = Client(os.environ.get("STREAMHUB_URL", "ws://127.0.0.1:49134"), name="greeter")


@client.function("greet::hello", description="GET /hello/:name -> a greeting, recorded in greetings/all",
                 triggers=[{"type": "http", "config": {"api_path": "/hello/:name", "http_method": "GET"}}])
async def hello(request: Any) -> Any:
    name = str(request["path_params"]["name"])
    await client.call("stream.set", {"stream_name": "greetings", "group_id": "all", "item_id": name,
                                     "data": {"name": name}})
    return {"status_code": 200, "body": {"hello": name}}


@client.function("greet::count", triggers=[{"type": "stream", "config": {"stream_name": "greetings",
                                                                        "group_id": "all"}}])
async def count(event: StreamEvent) -> None:
    await client.call("stream.update", {"stream_name": "greeting_stats", "group_id": "all", "item_id": "count",
                                        "ops": [UpdateOp.increment("changes", 1)]})


async def main() -> None:
    async with client:
        print("greeter ready", flush=True)
        await client.run_forever()


if __name__ == "__main__":
    asyncio.run(main())
