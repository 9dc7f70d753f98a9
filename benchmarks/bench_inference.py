"""Inference backends compared in one run: person crops/s with flip test, and how far their keypoints differ.

Backends: PyTorch eager fp32, eager channels_last + bf16 autocast, ONNX Runtime fp32 (an `hsjp export`
of the same weights). Each runs the shared path's network + flip test + heatmap decoding
(:func:`hsjp.evaluation.topdown.predict_heatmaps`, :func:`decode_batch`) on the same real LSPET val
crops; ratios are to eager fp32 measured in the same process. Then ``hsjp predict`` end to end on a
folder of LSPET val images (read, crop, network, decode, draw, write). Usage:

    OMP_NUM_THREADS=1 python benchmarks/bench_inference.py --ckpt R18.ckpt --images 64
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hsjp.api import PoseEstimator
from hsjp.config import load_config
from hsjp.data.annotations import load_annotations
from hsjp.data.crops import PersonCrops
from hsjp.data.targets import ImageOnly
from hsjp.evaluation.topdown import predict_heatmaps
from hsjp.export import export_onnx, onnx_session
from hsjp.inference import OnnxNetwork, PoseSpec, TorchNetwork
from hsjp.models import create_model

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
VAL_ANN = LSPET / "annotations" / "person_keypoints_lspet_val.json"


def crops(spec: PoseSpec, n: int) -> torch.Tensor:
    """The first ``n`` LSPET val persons as normalised crops (ground-truth boxes)."""
    dataset = PersonCrops(load_annotations(VAL_ANN, LSPET / "images").persons(True)[:n], spec.geometry, ImageOnly())
    return torch.stack([dataset[i]["image"] for i in range(n)])


def timed(network, x: torch.Tensor, spec: PoseSpec, iters: int, warmup: int) -> tuple[float, np.ndarray]:
    """Crops/s of flip-test heatmaps + decoding, and the keypoints (crop pixels) of the last call."""
    pairs = [tuple(p) for p in spec.flip_pairs]
    for _ in range(warmup):
        predict_heatmaps(network, x, pairs, True)
    t = time.perf_counter()
    for _ in range(iters):
        coords, _ = spec.codec.decode(predict_heatmaps(network, x, pairs, True).numpy())
    return len(x) * iters / (time.perf_counter() - t), coords


def backends(model: torch.nn.Module, spec: PoseSpec, tmp: Path) -> dict:
    onnx_path = export_onnx(model, spec, tmp / f"{spec.arch}.onnx")
    return {"eager fp32": TorchNetwork(model),
            "eager channels_last + bf16": TorchNetwork(model, channels_last=True, bf16=True),
            "ONNX Runtime fp32": OnnxNetwork(onnx_session(onnx_path)[0])}


def bench_backends(name: str, model: torch.nn.Module, spec: PoseSpec, iters: dict[int, tuple[int, int]]) -> list[dict]:
    x_all = crops(spec, max(iters))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nets = backends(model, spec, Path(tmp))
        for batch, (n, warmup) in iters.items():
            ref, base = None, None
            for backend, net in nets.items():  # eager fp32 first: the reference for ratios and differences
                rate, kpts = timed(net, x_all[:batch], spec, n, warmup)
                ref, base = (kpts, rate) if ref is None else (ref, base)
                row = {"model": name, "batch": batch, "backend": backend, "crops_s": round(rate, 2),
                       "timed_batches": n, "max_kpt_diff_px": round(float(np.abs(kpts - ref).max()), 3),
                       "mean_kpt_diff_px": round(float(np.abs(kpts - ref).mean()), 4), "ratio": round(rate / base, 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def bench_predict(ckpt: str, n_images: int, batch: int) -> dict:
    """``hsjp predict --whole-image`` on a folder of the first LSPET val images (one person each)."""
    from hsjp.predict import run_predict

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i in range(8001, 8001 + n_images):
            (folder / f"im{i:05d}.jpg").symlink_to(LSPET / "images" / f"im{i:05d}.jpg")
        t = time.perf_counter()
        PoseEstimator.from_checkpoint(ckpt)
        load = time.perf_counter() - t
        t = time.perf_counter()
        run_predict(ckpt, [str(folder)], Path(tmp) / "out", whole_image=True, batch_size=batch)
        total = time.perf_counter() - t
    row = {"predict_images": n_images, "batch": batch, "total_s": round(total, 2), "model_load_s": round(load, 2),
           "images_s": round(n_images / (total - load), 2)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", help="ResNet-18 finetune checkpoint (else random weights); also used for predict")
    p.add_argument("--images", type=int, default=64, help="LSPET val images for the `hsjp predict` run")
    p.add_argument("--skip-hrnet", action="store_true")
    args = p.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))
    torch.manual_seed(0)
    if args.ckpt:
        r18 = PoseEstimator.from_checkpoint(args.ckpt)
        model, spec = r18.network.model, r18.spec
    else:
        cfg = load_config("cpu_r18_128x96")
        model = create_model("resnet18", 17)
        spec = PoseSpec.from_config(cfg, [f"k{i}" for i in range(17)], [], [])
    bench_backends("resnet18 128x96", model, spec, {1: (20, 3), 32: (3, 1)})
    if not args.skip_hrnet:
        cfg = load_config("hrnet_w32_coco_256x192")
        from hsjp.data.annotations import flip_pairs_from_names
        from hsjp.data.synthetic import COCO_KEYPOINT_NAMES, COCO_SKELETON

        names = list(COCO_KEYPOINT_NAMES)
        spec = PoseSpec.from_config(cfg, names, COCO_SKELETON, flip_pairs_from_names(names))
        bench_backends("hrnet_w32 256x192 (random weights)", create_model("hrnet_w32", 17), spec,
                       {1: (3, 1), 32: (2, 1)})
    if args.ckpt:
        bench_predict(args.ckpt, args.images, 32)


if __name__ == "__main__":
    main()
