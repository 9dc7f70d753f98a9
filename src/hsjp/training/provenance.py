"""What produced a run: hsjp's code (version and git commit), the libraries, the machine, the command.

A run's config and seed fix what it was asked to do, not what did it. Two HRNet scratch records
re-run a day later gave 0.3-0.5 PCK@0.1 less (RESULTS 13.5), and nothing said which commit or
library versions had made them, so the cause could not be traced. Every training run therefore
appends one entry per start to ``OUT/provenance.json`` (a resumed run may go on under other code or
on another machine, and each start says so), and each experiment record carries its runs' entries.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

import hsjp
from hsjp.errors import ConfigError
from hsjp.io import atomic_write_json

PROVENANCE_FILE = "provenance.json"
#: The libraries whose versions can move a run's numbers (kernels, initialisations, image decoding, scoring).
LIBRARIES = ("torch", "torchvision", "timm", "lightning", "numpy", "opencv-python-headless", "pycocotools",
             "faster-coco-eval", "safetensors")


def git_state(package_dir: Path | None = None) -> dict[str, Any] | None:
    """The commit of the checkout hsjp runs from and the tracked files changed since it.

    None when hsjp is not running from its own checkout: an installed copy inside some other git
    repository (a project that vendors a virtual environment) must not report that repository's commit.
    """
    package_dir = (package_dir or Path(hsjp.__file__).parent).resolve()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() / "src" / "hsjp" != package_dir:
        return None
    commit, diff = git("rev-parse", "HEAD"), git("diff", "--name-only", "HEAD")  # staged or not; new files aside
    if commit is None or diff is None:
        return None
    changed = diff.splitlines()
    return {"commit": commit, "dirty": bool(changed), "changed": changed[:50]}


#: CPU features that pick oneDNN's kernels, and with them a bf16 run's rounding: the same code and
#: seed trained to other weights with AMX than without it (RESULTS 13.5).
NUMERIC_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16")


def _cpu() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine()}
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]  # every processor's block is alike
    except OSError:
        return info
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines())}
    flags = set(fields.get("flags", "").split())
    info["cpu"] = fields.get("model name", info["cpu"])
    info["cpu_flags"] = [f for f in NUMERIC_CPU_FLAGS if f in flags]
    return info


def provenance(trainer: L.Trainer | None = None, device: torch.device | None = None) -> dict[str, Any]:
    """One start of a run, as JSON: when, by which command, with which code, libraries and machine."""
    libraries = {"torch": torch.__version__}  # with its build (2.14.1+cu130), which the package metadata leaves out
    for name in LIBRARIES[1:]:
        try:
            libraries[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    machine: dict[str, Any] = {"host": platform.node(), "platform": platform.platform(), **_cpu(),
                               "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                               "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                               "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device is not None and device.type == "cuda":
        machine.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    entry: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),
        "hsjp": hsjp.__version__,
        "git": git_state(),
        "python": platform.python_version(),
        "libraries": libraries,
        "machine": machine,
    }
    if trainer is not None:
        entry["trainer"] = {"world_size": trainer.world_size, "num_nodes": trainer.num_nodes,
                            "precision": str(trainer.precision), "strategy": type(trainer.strategy).__name__}
    return entry


def read_provenance(run: Path) -> list[dict[str, Any]]:
    """A run's entries, oldest start first; empty for a run made before runs kept them.

    A file that is not such a list stops the run rather than being replaced: it is the only record
    of what made the run's earlier steps."""
    path = Path(run) / PROVENANCE_FILE
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON ({e}); move it aside to go on") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: not a list of provenance entries; move it aside to go on")
    return entries


class RecordProvenance(Callback):
    """Appends this start's entry to ``OUT/provenance.json`` once fit begins, on the main process.

    At fit start, not before: the processes of a DDP run exist then and each knows its device, so
    the entry names the GPU without the launcher's process touching CUDA first.
    """

    def __init__(self, out: Path, resumed_step: int) -> None:
        self.out = Path(out)
        self.resumed_step = resumed_step

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            entry = {**provenance(trainer, pl_module.device), "resumed_from_step": self.resumed_step}
            atomic_write_json(self.out / PROVENANCE_FILE, [*read_provenance(self.out), entry])
