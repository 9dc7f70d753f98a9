"""End-to-end training throughput and peak memory of the 256x192 configs on a GPU, through hsjp's
own training path: Lightning's DDP strategy, bf16-mixed autocast, channels_last, the real loaders
(image decode, affine warp, keypoint or puzzle targets) in worker processes.

``bench_models.py --device cuda`` times the network alone on one tensor; the ratio of the two is
what data loading, the Lightning loop and DDP cost. The data are generated person images (no
download, no COCO needed); their annotation records are repeated so that the timed steps fit in one
epoch, and the run checkpoints only at its end, so no save falls inside the timed window. One
checkpoint save is timed separately: the periodic save's cost per step follows from it. Usage:

    python benchmarks/bench_train_gpu.py --out /tmp/gpu --steps 300 --warmup 50
    # here, to check the script itself on the CPU in a minute:
    python benchmarks/bench_train_gpu.py --out /tmp/gpu --accelerator cpu --precision 32-true \\
        --configs cpu_r18_128x96 --steps 6 --warmup 2 --batch 4 --workers 0 --images 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch

from hsjp.config import load_config
from hsjp.data.synthetic import generate_dataset
from hsjp.io import atomic_write_json, atomic_write_text
from hsjp.training.modules import HeatmapModule
from hsjp.training.run import train

CONFIGS = ["simplebaseline_r50_coco_256x192", "hsjp_r50_coco_256x192", "hrnet_w32_coco_256x192",
           "hsjp_hrnet_w32_coco_256x192"]


class Throughput(L.Callback):
    """Images/s between the end of step ``warmup`` and the last step, peak GPU memory over that
    window, and the seconds one checkpoint save takes after it."""

    def __init__(self, warmup: int, ckpt: Path) -> None:
        self.warmup, self.ckpt = warmup, ckpt
        self.result: dict = {}
        self._t0 = 0.0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step == self.warmup:
            self._sync(pl_module)
            if pl_module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(pl_module.device)
            self._t0 = time.perf_counter()
        elif step == trainer.max_steps:
            self._sync(pl_module)
            seconds = time.perf_counter() - self._t0
            images = (step - self.warmup) * trainer.datamodule.cfg.data.batch_size * trainer.world_size
            self.result.update(steps_timed=step - self.warmup, seconds=round(seconds, 3),
                               img_s=round(images / seconds, 1), steps_s=round((step - self.warmup) / seconds, 2))
            if pl_module.device.type == "cuda":
                self.result.update(peak_allocated_gib=round(torch.cuda.max_memory_allocated(pl_module.device) / 2**30, 2),
                                   peak_reserved_gib=round(torch.cuda.max_memory_reserved(pl_module.device) / 2**30, 2))
            t = time.perf_counter()
            trainer.save_checkpoint(self.ckpt)
            self.result.update(checkpoint_save_s=round(time.perf_counter() - t, 2),
                               checkpoint_mib=round(self.ckpt.stat().st_size / 2**20, 1))


def repeated(ann: Path, times: int) -> Path:
    """The annotation file with each person record repeated ``times`` times under new ids."""
    data = json.loads(ann.read_text())
    records = data["annotations"]
    data["annotations"] = [{**a, "id": k * len(records) + i + 1} for k in range(times) for i, a in enumerate(records)]
    out = ann.with_name(f"{ann.stem}_x{times}.json")
    atomic_write_json(out, data, indent=None)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--batch", type=int, default=0, help="per-device batch; 0 keeps the config's")
    p.add_argument("--workers", type=int, default=12, help="loader processes per device")
    p.add_argument("--images", type=int, default=800, help="generated 640x480 images (about 2 persons each)")
    p.add_argument("--accelerator", default="gpu")
    p.add_argument("--precision", default="bf16-mixed")
    p.add_argument("--strategy", default="ddp")
    p.add_argument("--no-finite-check", action="store_true",
                   help="skip the per-step non-finite-loss check (a GPU-to-host sync), to measure what it costs")
    p.add_argument("--data", help="a folder this script generated before (its data/), to reuse")
    args = p.parse_args()
    out = Path(args.out)
    if args.no_finite_check:
        HeatmapModule._check_finite = lambda self, loss, batch_idx: None
    data = {"train_ann": Path(args.data) / "annotations" / "person_keypoints_train.json",
            "train_images": Path(args.data) / "images" / "train"} \
        if args.data else generate_dataset(out / "data", n_train=args.images, n_val=0, image_size=(640, 480), seed=0)
    persons = len(json.loads(data["train_ann"].read_text())["annotations"])
    rows = []
    for name in args.configs:
        base = load_config(name)
        batch = args.batch or base.data.batch_size
        ann = repeated(data["train_ann"], -(-(args.steps + 1) * batch // persons))
        cfg = load_config(name, [
            f"data.train_ann={ann}", f"data.train_images={data['train_images']}", "data.val_ann=",
            f"data.batch_size={batch}", f"data.num_workers={args.workers}", "model.init=scratch",
            f"train.max_steps={args.steps}", "train.epochs=1", "train.checkpoint_every_n_steps=0",
            "train.channels_last=true", f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
            f"trainer.strategy={args.strategy}", f"trainer.precision={args.precision}", "trainer.progress_bar=false"])
        meter = Throughput(args.warmup, out / name / "timed_save.ckpt")
        train(cfg, out / name, name=f"bench {name}", callbacks=[meter])
        device = torch.cuda.get_device_name() if args.accelerator == "gpu" else "cpu"
        row = {"config": name, "arch": cfg.model.arch, "task": cfg.task, "input_wh": list(cfg.data.input_size),
               "batch": batch, "workers": args.workers, "precision": args.precision, "strategy": args.strategy,
               "finite_check": not args.no_finite_check,
               "device": device, "torch": torch.__version__, **meter.result}
        print(json.dumps(row), flush=True)
        rows.append(row)
        atomic_write_json(out / "bench_train_gpu.json", {"args": vars(args), "rows": rows})
    lines = ["| config | task | batch | images/s | steps/s | peak allocated GiB | checkpoint save s (MiB) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['task']} | {r['batch']} | {r.get('img_s')} | {r.get('steps_s')} | "
              f"{r.get('peak_allocated_gib', '-')} | {r.get('checkpoint_save_s')} ({r.get('checkpoint_mib')}) |" for r in rows]
    atomic_write_text(out / "bench_train_gpu.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
