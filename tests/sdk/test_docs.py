"""docs/sdk.md and README.md run as written: every Python block is executed against a real engine and must print
the text block that follows it. Only the engine's addresses are replaced (the test engine listens on free ports)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from streamhub.transport.server import Server
from tests.conftest import stream_url, worker_url
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
async def test_doc_snippet_runs_and_prints_what_the_doc_says(name: str, server: Server, tmp_path: Path) -> None:
    code, expected = snippets()[name]
    code = code.replace("ws://127.0.0.1:49134", worker_url(server)).replace("ws://127.0.0.1:3112/", stream_url(server))
    script = tmp_path / "snippet.py"
    script.write_text(code)
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout(20))
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    if expected is not None:
        assert out.decode() == expected
