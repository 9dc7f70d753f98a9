"""``hsjp show-puzzle``: what the pretext task asks and what a network answers, as one PNG.

Per crop, left to right: the original crop with its cells numbered, the shuffled puzzle with each
cell labelled by the number of the piece now in it, the target heatmaps over it, the predicted
heatmaps (with a pretext checkpoint) with the decoded piece number of every cell (green where right,
red where wrong), and the crop reassembled from the prediction. The numbers say what the heatmaps
alone cannot: the maximum over a permutation's channels lights every cell, right or wrong.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from hsjp.codecs import jigsaw_codec
from hsjp.config import Config
from hsjp.data.annotations import folder_persons, load_annotations
from hsjp.data.crops import CropGeometry, PersonCrops, from_tensor, to_tensor
from hsjp.data.targets import ImageOnly
from hsjp.errors import DataError
from hsjp.jigsaw import JigsawCodec, placement_accuracy
from hsjp.training.modules import JigsawModule
from hsjp.viz import heatmap_overlay, save_figure


def _crops(cfg: Config, n: int) -> list[np.ndarray]:
    d = cfg.data
    if d.val_ann:
        records = load_annotations(d.val_ann, d.val_images, purpose="train").persons(require_keypoints=False)
    elif d.train_ann:
        records = load_annotations(d.train_ann, d.train_images, purpose="train").persons(require_keypoints=False)
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
        _number_cells(row[0], codec, np.arange(codec.num_patches))
        truth = np.argsort(perm)  # the piece in each cell
        _number_cells(row[1], codec, truth)
        if module is not None:
            decoded = np.argsort(guess)
            _number_cells(row[3], codec, decoded, right=decoded == truth)
    return save_figure(fig, out)


def _number_cells(ax: plt.Axes, codec: JigsawCodec, pieces: np.ndarray, right: np.ndarray | None = None) -> None:
    """Write ``pieces[c]`` (the original patch number) at the centre of every cell ``c``."""
    cols = codec.grid[1]
    pw, ph = codec.patch_size
    for c, k in enumerate(pieces):
        colour = "white" if right is None else ("lime" if right[c] else "red")
        ax.text((c % cols + 0.5) * pw, (c // cols + 0.5) * ph, str(k), color=colour, fontsize=7,
                ha="center", va="center", fontweight="bold",
                bbox={"facecolor": "black", "alpha": 0.45, "pad": 1, "linewidth": 0})
