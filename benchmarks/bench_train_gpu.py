"""End-to-end training throughput and peak memory of the 256x192 configs on a GPU, through hsjp's
own training path: Lightning's DDP strategy, bf16-mixed autocast, channels_last, the real loaders
(image decode, affine warp, keypoint or puzzle targets) in worker processes.

``bench_models.py --device cuda`` times the network alone on one tensor; the ratio of the two is
what data loading, the Lightning loop and DDP cost. The data are generated person images (no
download, no COCO needed); their annotation records are repeated so that the timed steps fit in one
epoch, and the run checkpoints only at its end, so no save falls inside the timed window. One
checkpoint save is timed separately: the periodic save's cost per step follows from it.

Where the gap between the two goes: ``--profile-steps N`` runs torch.profiler over the last N
steps (after the timed window, which would otherwise hold the seconds spent building the tables)
and reports, per step, the wall time, the time the GPU was busy and the time the main process
waited for the loader; ``--loader resident`` replaces the loader with one batch kept on the device
(the Lightning loop and module with no data path); ``--cv2-threads N`` sets OpenCV's thread pool
for the loader processes. Usage:

    python benchmarks/bench_train_gpu.py --out /tmp/gpu --steps 300 --warmup 50
    python benchmarks/bench_train_gpu.py --out /tmp/prof --strategy auto --profile-steps 12 [--loader resident]
    # here, to check the script itself on the CPU in a minute:
    python benchmarks/bench_train_gpu.py --out /tmp/gpu --accelerator cpu --precision 32-true \\
        --configs cpu_r18_128x96 --steps 6 --warmup 2 --batch 4 --workers 0 --images 20
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import shutil
import time
from pathlib import Path

import cv2
import lightning as L
import torch
from torch.autograd import DeviceType

from hsjp.config import load_config
from hsjp.data.synthetic import generate_dataset
from hsjp.io import atomic_write_json, atomic_write_text
from hsjp.training import datamodule
from hsjp.training.modules import HeatmapModule
from hsjp.training.run import train

CONFIGS = ["simplebaseline_r50_coco_256x192", "hsjp_r50_coco_256x192", "hrnet_w32_coco_256x192",
           "hsjp_hrnet_w32_coco_256x192"]


class Throughput(L.Callback):
    """Images/s between the end of step ``warmup`` and step ``end``, peak GPU memory over that
    window, and the seconds one checkpoint save takes after it."""

    def __init__(self, warmup: int, end: int, ckpt: Path) -> None:
        self.warmup, self.end, self.ckpt = warmup, end, ckpt
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
        elif step == self.end:
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


class Profile(L.Callback):
    """torch.profiler over the ``steps`` steps after step ``start``; per step: wall time, GPU busy
    time (the union of kernel and copy intervals), the main process's wait for the next batch
    (PyTorch's own ``enumerate(DataLoader)`` range) and its waits for the GPU; the top operators
    by their own CPU and GPU time go to ``tables``, the timeline to ``trace`` (gzipped Chrome JSON)."""

    def __init__(self, start: int, steps: int, tables: Path, trace: Path) -> None:
        self.start, self.steps, self.tables, self.trace = start, steps, tables, trace
        self.result: dict = {}
        self._prof: torch.profiler.profile | None = None
        self._t0 = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step, cuda = trainer.global_step, pl_module.device.type == "cuda"
        if step == self.start:
            kinds = torch.profiler.ProfilerActivity
            activities = [kinds.CPU, kinds.CUDA] if cuda else [kinds.CPU]
            self._prof = torch.profiler.profile(activities=activities)
            if cuda:
                torch.cuda.synchronize(pl_module.device)
            self._prof.__enter__()
            self._t0 = time.perf_counter()
        elif self._prof is not None and step == self.start + self.steps:
            if cuda:
                torch.cuda.synchronize(pl_module.device)
            wall = time.perf_counter() - self._t0
            self._prof.__exit__(None, None, None)
            self.result = self.summary(self._prof, wall)
            self._prof = None

    def summary(self, prof: torch.profiler.profile, wall: float) -> dict:
        events = prof.events()
        # kernels, copies and fills; not the annotations that mirror each CPU range on the GPU's
        # timeline (they span idle gaps, and counting them read an idle GPU as busy)
        device = [e for e in events if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
        spans = sorted((e.time_range.start, e.time_range.end) for e in device)
        busy, end = 0.0, float("-inf")
        for a, b in spans:  # union of intervals: overlapping kernels count once
            busy += max(0.0, b - max(a, end))
            end = max(end, b)
        copies = sum(e.time_range.elapsed_us() for e in device if "memcpy" in e.name.lower())

        def cpu_ms(match) -> float:
            return round(sum(e.time_range.elapsed_us() for e in events
                             if e.device_type == DeviceType.CPU and match(e.name)) / 1e3 / self.steps, 2)

        n = self.steps
        averages = prof.key_averages()
        by_gpu = "self_device_time_total" if device else "self_cpu_time_total"
        self.tables.write_text(f"# {n} steps, wall {1e3 * wall / n:.2f} ms/step\n\n## by own CPU time\n"
                               + averages.table(sort_by="self_cpu_time_total", row_limit=30)
                               + f"\n\n## by own {'GPU' if device else 'CPU'} time\n"
                               + averages.table(sort_by=by_gpu, row_limit=30) + "\n")
        raw = self.trace.with_suffix("")
        prof.export_chrome_trace(str(raw))
        with raw.open("rb") as src, gzip.open(self.trace, "wb") as dst:
            shutil.copyfileobj(src, dst)
        raw.unlink()
        return {"profiled_steps": n, "wall_ms_per_step": round(1e3 * wall / n, 2),
                "gpu_busy_ms_per_step": round(busy / 1e3 / n, 2),
                "gpu_busy_fraction": round(busy / 1e6 / wall, 3) if wall else None,
                "gpu_copy_ms_per_step": round(copies / 1e3 / n, 2),
                "loader_wait_ms_per_step": cpu_ms(lambda name: name.startswith("enumerate(DataLoader)")),
                # Lightning's automatic optimisation runs forward, loss and backward inside the
                # optimiser's step (as its closure), so this range is the whole step's compute
                "optimizer_step_ms_per_step": cpu_ms(lambda name: name.startswith("Optimizer.step")),
                "host_sync_ms_per_step": cpu_ms(lambda name: name in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))}


class Resident:
    """One batch, ``steps`` times: a single iterable, where Lightning would read a list as many loaders."""

    def __init__(self, batch: dict, steps: int) -> None:
        self.batch, self.steps = batch, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.repeat(self.batch, self.steps)


def resident(steps: int, train_dataloader=datamodule.CropDataModule.train_dataloader):
    """A ``train_dataloader`` that yields one real batch, moved to the device once, ``steps`` times."""
    def loader(self) -> Resident:
        device = self.trainer.strategy.root_device
        batch = next(iter(train_dataloader(self)))
        return Resident({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}, steps)
    return loader


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
    p.add_argument("--profile-steps", type=int, default=0,
                   help="profile the last this many steps (the timed window ends before them)")
    p.add_argument("--loader", choices=["real", "resident"], default="real",
                   help="resident: one batch kept on the device, to time the loop and module without the data path")
    p.add_argument("--cv2-threads", type=int, default=-1,
                   help="OpenCV threads per loader process (-1: OpenCV's default, one per core)")
    args = p.parse_args()
    if args.steps - args.profile_steps <= args.warmup:
        p.error("--steps must exceed --warmup plus --profile-steps")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.no_finite_check:
        HeatmapModule._check_finite = lambda self, loss, batch_idx: None
    if args.cv2_threads >= 0:
        # set before the loader processes fork, which inherit it: setting it inside a forked worker
        # whose parent had used OpenCV's thread pool hung that worker (seen here)
        cv2.setNumThreads(args.cv2_threads)
    if args.loader == "resident":
        datamodule.CropDataModule.train_dataloader = resident(args.steps + 1)
    data = {"train_ann": Path(args.data) / "annotations" / "person_keypoints_train.json",
            "train_images": Path(args.data) / "images" / "train"} \
        if args.data else generate_dataset(out / "data", n_train=args.images, n_val=0, image_size=(640, 480), seed=0)
    persons = len(json.loads(data["train_ann"].read_text())["annotations"])
    rows = []
    for name in args.configs:
        base = load_config(name)
        batch = args.batch or base.data.batch_size
        ann = repeated(data["train_ann"], -(-(args.steps + 1) * batch // persons))
        workers = 0 if args.loader == "resident" else args.workers
        cfg = load_config(name, [
            f"data.train_ann={ann}", f"data.train_images={data['train_images']}", "data.val_ann=",
            f"data.batch_size={batch}", f"data.num_workers={workers}",
            "model.init=scratch",
            f"train.max_steps={args.steps}", "train.epochs=1", "train.checkpoint_every_n_steps=0",
            "train.channels_last=true", f"trainer.accelerator={args.accelerator}", "trainer.devices=1",
            f"trainer.strategy={args.strategy}", f"trainer.precision={args.precision}", "trainer.progress_bar=false"])
        # the profile comes last: its tables and trace are built inside the hook that ends it, seconds
        # to a minute, which fell inside the timed window when that window followed it (seen on an H200)
        end = args.steps - args.profile_steps
        meter = Throughput(args.warmup, end, out / name / "timed_save.ckpt")
        profile = Profile(end, args.profile_steps, out / f"profile_{name}.txt", out / f"trace_{name}.json.gz")
        train(cfg, out / name, name=f"bench {name}", callbacks=[meter, profile] if args.profile_steps else [meter])
        device = torch.cuda.get_device_name() if args.accelerator == "gpu" else "cpu"
        row = {"config": name, "arch": cfg.model.arch, "task": cfg.task, "input_wh": list(cfg.data.input_size),
               "batch": batch, "workers": workers, "precision": args.precision, "strategy": args.strategy,
               "finite_check": not args.no_finite_check, "loader": args.loader, "cv2_threads": args.cv2_threads,
               "device": device, "torch": torch.__version__, **meter.result, **profile.result}
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
