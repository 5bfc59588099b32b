"""docs/sdk.md and README.md run as written: every Python block is executed twice against a real engine on a durable
store and must print the text block that follows it both times. Only the engine's addresses are replaced (the test
engine listens on free ports)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from streamhub.config import AdapterConfig
from tests.conftest import make_config, running, stream_url, worker_url
from tests.helpers import timeout

ROOT = Path(__file__).parents[2]
DOCS = (ROOT / "docs" / "sdk.md", ROOT / "README.md")
_BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n+(?:```text\n(?P<output>.*?)```)?", re.S)


def snippets() -> dict[str, tuple[str, str | None]]:
    found = {f"{doc.name}-{n}": (m["code"], m["output"])
             for doc in DOCS for n, m in enumerate(_BLOCK.finditer(doc.read_text()), 1)}
    assert len(found) >= 4, "the SDK documentation lost its examples"
    return found


@pytest.mark.parametrize("name", sorted(snippets()))
async def test_doc_snippet_runs_twice_and_prints_what_the_doc_says(name: str, tmp_path: Path) -> None:
    """Twice on one durable store: a reader runs an example again, and it must not hang on what the first run left."""
    code, expected = snippets()[name]
    store = AdapterConfig(store_method="file_based", file_path=str(tmp_path / "data"))
    async with running(make_config(adapter=store)) as server:
        code = code.replace("ws://127.0.0.1:49134", worker_url(server)).replace("ws://127.0.0.1:3112/",
                                                                               stream_url(server))
        script = tmp_path / "snippet.py"
        script.write_text(code)
        for run in ("first", "second"):
            out = await _run(script)
            if expected is not None:
                assert out == expected, f"{run} run"


async def _run(script: Path) -> str:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    return out.decode()
