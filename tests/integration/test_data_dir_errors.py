"""``streamhub serve`` with an unusable data directory: one ``cannot start:`` line naming it, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, timeout

ROOT = os.geteuid() == 0  # root writes through permission bits: chmod cannot make a directory read-only for it


def _serve(tmp_path: Path, data: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"port: {free_port()}\nmodules:\n  - class: modules::stream::StreamModule\n    config:\n"
        f"      port: {free_port()}\n      adapter:\n        class: modules::stream::adapters::KvStore\n"
        f"        config:\n          store_method: file_based\n          file_path: {data}\n")
    return subprocess.run([sys.executable, "-m", "streamhub", "serve", "-c", str(config)],
                          capture_output=True, text=True, timeout=timeout(30))


def _one_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamhub: cannot start: data directory "), lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_data_path_that_is_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a directory")
    _one_line(_serve(tmp_path, data), str(data), "is a file, not a directory")


def test_data_path_under_a_file(tmp_path: Path) -> None:
    parent = tmp_path / "blocker"
    parent.write_text("not a directory")
    data = parent / "data"
    _one_line(_serve(tmp_path, data), str(data), f"{parent} is a file, not a directory")


def _unwritable_existing_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create files in: chmod 555 for a user, sysfs for root."""
    if not ROOT:
        data = tmp_path / "readonly"
        data.mkdir()
        data.chmod(0o555)
        return data
    data = Path("/sys/kernel")
    try:
        (data / "LOCK").open("w").close()
    except OSError:
        return data
    pytest.skip("running as root without a read-only sysfs: no directory here refuses root's writes")


def test_read_only_data_directory(tmp_path: Path) -> None:
    data = _unwritable_existing_dir(tmp_path)
    result = _serve(tmp_path, data)
    _one_line(result, str(data), str(data / "LOCK"), "must be writable")
    assert "Permission denied" in result.stderr or "Read-only file system" in result.stderr


@pytest.mark.skipif(ROOT, reason="root ignores permission bits; the read-only case above covers root")
def test_data_directory_without_permission(tmp_path: Path) -> None:
    data = tmp_path / "locked"
    data.mkdir()
    data.chmod(0)
    try:
        _one_line(_serve(tmp_path, data), str(data), "Permission denied", "must be writable")
    finally:
        data.chmod(0o755)
