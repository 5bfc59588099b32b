"""The redis package is an extra: without it the engine runs on its embedded store, and a Redis config says what
to install instead of failing with an ImportError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port, timeout

# Runs the real CLI in an interpreter where ``import redis`` fails, as after ``pip install streamhub-engine``.
_WITHOUT_REDIS = "import sys; sys.modules['redis'] = None; from streamhub.cli import main; sys.exit(main(sys.argv[1:]))"


def _serve(tmp_path: Path, adapter: str) -> subprocess.Popen[str]:
    config = tmp_path / "config.yaml"
    config.write_text(f"port: {free_port()}\nmodules:\n  - class: modules::stream::StreamModule\n"
                      f"    config: {{port: {free_port()}, adapter: {adapter}}}\n")
    return subprocess.Popen([sys.executable, "-c", _WITHOUT_REDIS, "serve", "-c", str(config)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_embedded_store_runs_without_redis_and_redis_config_names_the_extra(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "{class: modules::stream::adapters::KvStore, config: {store_method: file_based}}")
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith("streamhub ready:")
    finally:
        proc.terminate()
        assert proc.wait(timeout(20)) == 0
    proc = _serve(tmp_path, "{class: modules::stream::adapters::RedisAdapter, config: {redis_url: 'redis://x:1'}}")
    out, err = proc.communicate(timeout=timeout(20))
    assert proc.returncode == 2 and out == ""
    assert err.strip() == ("streamhub: config error: modules::stream::adapters::RedisAdapter needs the redis package, "
                           "which is not installed: pip install 'streamhub-engine[redis]'")
