"""Heatmap regression loss shared by finetuning and the HSJP pretext."""

from __future__ import annotations

import torch
from torch import nn

from hsjp.errors import ConfigError


class HeatmapMSELoss(nn.Module):
    """Squared error between predicted and target heatmaps, weighted per keypoint (or puzzle piece).

    ``pixel_reduction='sum'`` sums over the pixels of each map and averages over maps: the
    gradient of one map then does not shrink with its area. The official per-pixel ``'mean'``
    divides it by h*w (about 3,000 at 256x192), which with a 0.001-std head init leaves backbone
    gradients near Adam's eps and training stalls; it is kept for comparison.
    """

    def __init__(self, pixel_reduction: str = "sum"):
        super().__init__()
        if pixel_reduction not in ("sum", "mean"):
            raise ConfigError(f"train.loss_pixel_reduction must be 'sum' or 'mean', not {pixel_reduction!r}")
        self.pixel_reduction = pixel_reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        err = (pred.float() - target.float()).pow(2).flatten(2)
        per_map = err.sum(-1) if self.pixel_reduction == "sum" else err.mean(-1)
        return (per_map * weights.float()).mean()
