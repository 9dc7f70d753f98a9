"""Test helpers importable from any test module (``tests`` is on pytest's pythonpath)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a clean skip where that folder is absent (a user's machine)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data lives beside the project)")
    return path


def run_process(cmd: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` with text output, in its own process group, which is killed whatever way this returns.

    A DDP run's other ranks and a loader's workers are children of the process the test started: killing
    only that one (``subprocess.run``'s timeout) would leave them spinning on the two cores for the rest
    of the suite.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of a finished run, or the whole of a hung one
        except ProcessLookupError:
            pass
        if proc.returncode is None:
            proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
