"""Does the CPU's instruction set change what a run trains? Same code, seed and data, other kernels.

oneDNN picks its convolution kernels by the instruction sets the CPU offers (AMX, AVX-512 BF16,
AVX2...), and each rounds and accumulates in its own order. This runs one short ``hsjp finetune`` of
the demo recipe (ResNet-18 SimpleBaseline 128x96, batch 16) on generated data several times, each
with ``ONEDNN_MAX_CPU_ISA`` capping the instruction set as a CPU without AMX (or, in fp32, without
AVX-512) would, in bf16 autocast and in fp32, plus a repeat of the uncapped run (is a run reproducible on one
machine at all?). Prints, per run, its final training loss, validation PCK@0.1 and how far its
trained weights are from the uncapped run's of the same precision (relative L2), as JSON. Usage:

    python benchmarks/cpu_isa_numerics.py --out /tmp/isa --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from hsjp.data.synthetic import generate_dataset
from hsjp.viz import read_metrics_csv

#: Per precision, the instruction-set caps compared with oneDNN's own choice (""; AMX where the CPU
#: has it). AMX against AVX-512 BF16 is the difference between the Intel Xeon and the AMD EPYC this
#: project has run on; bf16 capped at AVX2 falls back to kernels too slow to wait for.
ISAS = {"bf16-mixed": ("", "AVX512_CORE_BF16"), "32-true": ("", "AVX512_CORE_BF16", "AVX2")}


def finetune(out: Path, data: dict, precision: str, isa: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "hsjp.cli", "finetune", "--config", "demo", "--out", str(out),
           f"data.train_ann={data['train_ann']}", f"data.train_images={data['train_images']}",
           f"data.val_ann={data['val_ann']}", f"data.val_images={data['val_images']}",
           f"train.max_steps={args.steps}", "train.limit_val_batches=1", f"trainer.precision={precision}",
           "trainer.accelerator=cpu", f"trainer.num_threads={args.threads}", "trainer.progress_bar=false"]
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    if not (out / "metrics.json").is_file():  # a re-run of the script keeps the runs it finished
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    loss = read_metrics_csv(out / "logs" / "metrics.csv")["train/loss"]
    return {"precision": precision, "isa": isa or "default", "final_train_loss": loss[-1][1],
            "val_pck": json.loads((out / "metrics.json").read_text())["PCK@0.1"]}


def weights(out: Path) -> torch.Tensor:
    """The trained parameters, flattened (BatchNorm's running statistics aside: they are not trained)."""
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    return torch.cat([v.double().flatten() for k, v in state.items()
                      if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    data = generate_dataset(args.out / "data", n_train=96, n_val=16)
    rows = []
    for precision, isas in ISAS.items():
        runs = [(isa, args.out / f"{precision}-{isa or 'default'}") for isa in isas]
        runs.append(("", args.out / f"{precision}-default-again"))
        reference = None
        for isa, out in runs:
            row = finetune(out, data, precision, isa, args)
            w = weights(out)
            reference = w if reference is None else reference
            row["run"] = out.name
            row["weights_identical_to_default"] = bool(torch.equal(w, reference))
            row["weights_rel_l2_diff_vs_default"] = float((w - reference).norm() / reference.norm())
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
