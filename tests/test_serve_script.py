"""``./scripts/serve``: installs only when pyproject.toml changed, so a second start is quick and offline; ``-c``
is read in the caller's directory.

The project is copied to a temporary directory whose ``.venv`` holds two shims: ``python`` records pip runs instead
of installing (no network in a test) and runs everything else with this interpreter; ``streamhub`` runs this
checkout's engine. What is measured is the script's own decision and the real engine's start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import streamhub
from tests.helpers import free_port, timeout

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(streamhub.__file__).resolve().parent.parent


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "serve", project / "scripts" / "serve")
    shutil.copy2(ROOT / "pyproject.toml", project / "pyproject.toml")
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    shims = {
        "python": f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "$*" >> "$PIP_LOG"; exit 0; fi\n'
                  f'exec {sys.executable} "$@"\n',
        "streamhub": f'#!/bin/sh\nexec {sys.executable} -m streamhub "$@"\n',
    }
    for name, text in shims.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return project


def _start(project: Path, cwd: Path, pip_log: Path) -> float:
    """Run ``scripts/serve -c engine.yaml`` from ``cwd`` until ready; returns the seconds it took, then stops it."""
    env = {**os.environ, "PIP_LOG": str(pip_log), "PYTHONPATH": str(SRC)}
    began = time.monotonic()
    proc = subprocess.Popen([str(project / "scripts" / "serve"), "-c", "engine.yaml"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        took = time.monotonic() - began
        assert line.startswith("streamhub ready:"), line
        assert f"config: {cwd / 'engine.yaml'})" in line, line  # -c resolved in the caller's directory
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout(20)) == 0
    return took


def test_second_start_installs_nothing_and_takes_about_a_second(tmp_path: Path) -> None:
    project = _project(tmp_path)
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    (caller / "engine.yaml").write_text(
        f"port: {free_port()}\nmodules:\n  - class: modules::stream::StreamModule\n    config:\n"
        f"      port: {free_port()}\n      adapter: {{class: modules::stream::adapters::KvStore}}\n")
    pip_log = tmp_path / "pip.log"

    _start(project, caller, pip_log)
    first = pip_log.read_text().splitlines()
    assert first[-1] == f"-m pip install --quiet -e {project}[redis]", first  # first start: installed
    second = _start(project, caller, pip_log)
    assert pip_log.read_text().splitlines() == first  # second start: no pip at all
    assert second < timeout(2.0), f"second start took {second:.2f} s"
    with open(project / "pyproject.toml", "a") as changed:
        changed.write("\n# a new dependency would go here\n")
    _start(project, caller, pip_log)
    assert len(pip_log.read_text().splitlines()) == 2 * len(first)  # project changed: installed again
