"""Training and inference throughput (images/s) of the shipped models, on synthetic input.

Measures the network alone (forward + MSE loss + backward + Adam step for training; forward with
flip test for inference), so data loading is excluded; variants are measured in one process so
their ratios compare like with like. Usage:

    python benchmarks/bench_models.py --arch resnet18 --size 96 128 --batch 8 --variants fp32 bf16 bf16_cl
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from hsjp.losses import HeatmapMSELoss
from hsjp.models import create_model

VARIANTS = {"fp32": (False, False), "cl": (False, True), "bf16": (True, False), "bf16_cl": (True, True)}


def bench(arch: str, size: tuple[int, int], batch: int, variant: str, steps: int, warmup: int, outputs: int,
          device: str = "cpu") -> dict:
    bf16, channels_last = VARIANTS[variant]
    torch.manual_seed(0)
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = create_model(arch, outputs).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = HeatmapMSELoss()
    w, h = size
    x = torch.randn(batch, 3, h, w, device=device).contiguous(memory_format=fmt)
    target = torch.rand(batch, outputs, h // 4, w // 4, device=device)
    weights = torch.ones(batch, outputs, device=device)
    # a GPU runs ahead of Python: wait for its queue before reading the clock
    sync = torch.cuda.synchronize if kind == "cuda" else (lambda: None)

    def train_step() -> None:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), target, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.inference_mode()
    def infer_step() -> None:
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            model(x)
            model(x.flip(-1))

    result = {"arch": arch, "input_wh": list(size), "batch": batch, "variant": variant}
    for name, fn in (("train", train_step), ("infer_flip", infer_step)):
        model.train(name == "train")
        for _ in range(warmup):
            fn()
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        result[f"{name}_img_s"] = round(batch * steps / (time.perf_counter() - t), 2)
    if kind == "cuda":
        result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], metavar=("W", "H"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--outputs", type=int, default=17)
    p.add_argument("--variants", nargs="+", default=["fp32", "bf16_cl"], choices=list(VARIANTS))
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = p.parse_args()
    machine = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        platform.processor() or platform.machine()
    print(json.dumps({"machine": machine, "threads": torch.get_num_threads(), "torch": torch.__version__}))
    for v in args.variants:
        print(json.dumps(bench(args.arch, tuple(args.size), args.batch, v, args.steps, args.warmup, args.outputs,
                                args.device)), flush=True)


if __name__ == "__main__":
    main()
