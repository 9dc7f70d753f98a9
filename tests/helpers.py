"""Test helpers importable from any test module (``tests`` is on pytest's pythonpath)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


def peak_margins(heatmaps: np.ndarray) -> np.ndarray:
    """What decides each map's decoded keypoint: its top value minus the runner-up, and the two differences
    between the peak's opposite neighbours that set the quarter-pixel offset (interior peaks only).

    Two backends can agree on a keypoint only where these stand above the difference between their maps.
    """
    maps = np.asarray(heatmaps, np.float32).reshape(-1, *np.shape(heatmaps)[-2:])
    flat = maps.reshape(len(maps), -1)
    top2 = np.sort(flat, axis=1)[:, -2:]
    y, x = np.unravel_index(flat.argmax(1), maps.shape[1:])
    inner = (x > 0) & (x < maps.shape[2] - 1) & (y > 0) & (y < maps.shape[1] - 1)
    rows, y, x = np.arange(len(maps))[inner], y[inner], x[inner]
    return np.concatenate([top2[:, 1] - top2[:, 0], np.abs(maps[rows, y, x + 1] - maps[rows, y, x - 1]),
                           np.abs(maps[rows, y + 1, x] - maps[rows, y - 1, x])])
