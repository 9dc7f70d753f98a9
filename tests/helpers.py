"""Test helpers importable from any test module (``tests`` is on pytest's pythonpath)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def process_group(cmd: list[str], **kwargs) -> Iterator[subprocess.Popen]:
    """``cmd`` started in its own process group, which is killed whatever way the block ends.

    A DDP run's other ranks and a loader's workers are children of the process the test started: killing
    only that one (``subprocess.run``'s timeout) would leave them spinning on the two cores for the rest
    of the suite.
    """
    proc = subprocess.Popen(cmd, text=True, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of a finished run, or the whole of a hung one
        if proc.returncode is None:
            proc.communicate()


def wait_for_file(proc: subprocess.Popen, path: Path, seconds: float) -> None:
    """Until ``path`` exists (a running job's first checkpoint, say); fails if ``proc`` ended first."""
    deadline = time.monotonic() + seconds
    while not path.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before {path.name} appeared: {proc.stderr.read()[-2000:]}"
    assert path.is_file(), f"no {path} after {seconds} s"


def run_process(cmd: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` with text output, in a ``process_group``."""
    with process_group(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) as proc:
        out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def pretend_cpu_bf16(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool = False) -> None:
    """Answer torch's CPU probes as a CPU with (or without) native bf16 would."""
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
