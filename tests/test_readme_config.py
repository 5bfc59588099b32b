"""The configuration shown in the README is one the engine accepts."""

from __future__ import annotations

import re
from pathlib import Path

from streamhub.config import load_config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_config_block_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no yaml block"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(blocks[0])
    config = load_config(config_file, environ={})
    assert config.stream is not None and config.stream.port == 3112
    assert config.stream.adapter.store_method == "file_based" and config.stream.auth_function == "auth::validate"
    assert config.rest_api is not None and config.rest_api.cors_allowed_origins == ("http://localhost:5173",)
