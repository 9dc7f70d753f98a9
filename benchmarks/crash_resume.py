"""Kill-and-resume against an uninterrupted run, and what a step checkpoint costs.

Three ``hsjp finetune`` runs of the demo recipe (ResNet-18 SimpleBaseline 128x96, bf16, batch 16)
on generated data, same seed: A and B uninterrupted (is a run reproducible at all?); C killed with
SIGKILL just after its first epoch-end checkpoint, D just after its first mid-epoch step checkpoint
of the second epoch, each then run again. Prints steps/s, the time of one atomic checkpoint save,
and the runs' final metrics as JSON. Usage:

    python benchmarks/crash_resume.py --out /tmp/crash-resume --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from hsjp.data.synthetic import generate_dataset
from hsjp.training.checkpoints import AtomicCheckpointIO

KEYS = ("global_step", "AP", "AR", "PCK@0.1", "loss")


def command(out: Path, data: dict, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "hsjp.cli", "finetune", "--config", "demo", "--out", str(out),
            f"data.train_ann={data['train_ann']}", f"data.train_images={data['train_images']}",
            f"data.val_ann={data['val_ann']}", f"data.val_images={data['val_images']}",
            f"train.epochs={args.epochs}", f"train.milestones=[{args.epochs - 1}]", "train.val_every_n_epochs=2",
            f"train.checkpoint_every_n_steps={args.every}", "trainer.accelerator=cpu",
            f"trainer.num_threads={args.threads}", "trainer.progress_bar=false"]


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def kill_and_rerun(cmd: list[str], env: dict, when) -> int:
    """SIGKILL the run as soon as its last.ckpt holds a step for which ``when`` is true; run it again."""
    last = Path(cmd[cmd.index("--out") + 1]) / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    step = None
    while proc.poll() is None:
        if last.is_file():
            step = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"]
            if when(step):
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait()
    assert step is not None and when(step), f"the run was not killed where intended (last step {step})"
    run(cmd, env)
    return step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    root = Path(args.out)
    data = generate_dataset(root / "data", n_train=160, n_val=40, seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    seconds = {name: run(command(root / name, data, args), env) for name in ("A", "B")}

    per_epoch = json.loads((root / "A" / "metrics.json").read_text())["global_step"] // args.epochs
    killed_at = {"C": kill_and_rerun(command(root / "C", data, args), env, lambda s: s == per_epoch),
                 "D": kill_and_rerun(command(root / "D", data, args), env, lambda s: s > per_epoch and s % per_epoch)}
    last = root / "D" / "checkpoints" / "last.ckpt"

    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    saves = []
    for _ in range(3):
        start = time.perf_counter()
        AtomicCheckpointIO().save_checkpoint(ckpt, root / "probe.ckpt")
        saves.append(time.perf_counter() - start)
    (root / "probe.ckpt").unlink()
    metrics = {name: {k: json.loads((root / name / "metrics.json").read_text())[k] for k in KEYS} for name in "ABCD"}
    steps = metrics["A"]["global_step"]
    print(json.dumps({
        "threads": args.threads, "steps": steps, "killed_at_step": killed_at, "steps_per_epoch": per_epoch,
        "wall_s": seconds, "steps_per_s_incl_startup_and_val": steps / seconds["A"],
        "checkpoint_mb": last.stat().st_size / 1e6, "checkpoint_save_s": saves, "metrics": metrics,
    }, indent=1))


if __name__ == "__main__":
    main()
