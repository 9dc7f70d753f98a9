"""``hsjp show-puzzle``: what the pretext task asks and what a network answers, as one PNG.

Per crop, left to right: the original crop, the shuffled puzzle, the target heatmaps over it, the
predicted heatmaps (with a pretext checkpoint), and the crop reassembled from the prediction.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from hsjp.config import Config
from hsjp.data.annotations import folder_persons, load_annotations
from hsjp.data.crops import CropGeometry, PersonCrops, from_tensor, to_tensor
from hsjp.data.targets import ImageOnly
from hsjp.errors import DataError
from hsjp.jigsaw import placement_accuracy
from hsjp.training.datamodule import jigsaw_codec
from hsjp.training.modules import JigsawModule
from hsjp.viz import heatmap_overlay, save_figure


def _crops(cfg: Config, n: int) -> list[np.ndarray]:
    d = cfg.data
    if d.val_ann:
        records = load_annotations(d.val_ann, d.val_images).persons(require_keypoints=False)
    elif d.train_ann:
        records = load_annotations(d.train_ann, d.train_images).persons(require_keypoints=False)
    else:
        records = folder_persons(d.train_image_folder)
    records = [r for r in records if min(r.bbox[2], r.bbox[3]) >= d.min_box_size][:n]
    if not records:
        raise DataError("no person boxes to show")
    dataset = PersonCrops(records, CropGeometry.from_config(cfg.data), ImageOnly())
    return [from_tensor(dataset[i]["image"]) for i in range(len(records))]


def show_puzzle(cfg: Config, out: str | Path, ckpt: str | None = None, n: int = 4, seed: int = 0) -> Path:
    module = None
    if ckpt:
        module = JigsawModule.from_checkpoint(ckpt)
        module.eval()
        cfg = module.cfg  # the checkpoint's grid and input size are the ones it can solve
    codec = jigsaw_codec(cfg)
    rng = np.random.default_rng(seed)
    crops = _crops(cfg, n)
    cols = 5 if module is not None else 3
    fig, axes = plt.subplots(len(crops), cols, figsize=(2.2 * cols, 2.9 * len(crops)), squeeze=False)
    for row, crop in zip(axes, crops):
        shuffled, target, perm = codec.encode(crop, rng)
        panels = [("original", crop), (f"shuffled {codec.grid[0]}x{codec.grid[1]}", shuffled),
                  ("target heatmaps", heatmap_overlay(shuffled, target))]
        if module is not None:
            with torch.no_grad():
                pred = module(to_tensor(shuffled)[None]).float()[0].numpy()
            guess = codec.decode(pred)
            acc = placement_accuracy(guess, perm)
            panels += [("predicted heatmaps", heatmap_overlay(shuffled, pred)),
                       (f"reassembled ({100 * acc:.0f}% placed)", codec.restore(shuffled, guess))]
        for ax, (title, image) in zip(row, panels):
            ax.imshow(image)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return save_figure(fig, out)
