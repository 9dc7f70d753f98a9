"""HRNet (Sun et al., 2019) for pose: timm's HRNet, its stride-4 branch, and a 1x1 conv."""

from __future__ import annotations

import timm
from torch import nn


def hrnet_backbone(name: str, pretrained: bool = False) -> tuple[nn.Module, int]:
    """timm HRNet returning only the highest-resolution (stride 4) branch, and its channel count.

    The last stage's fuse layers that build the lower-resolution outputs are dropped (as the
    official pose HRNet does with ``multi_scale_output=False``): they would get no gradient, which
    makes DDP demand ``find_unused_parameters`` and wastes compute.
    """
    body = timm.create_model(name, pretrained=pretrained, features_only=True, feature_location="", out_indices=(1,))
    last = body.stage4[-1]
    last.fuse_layers = nn.ModuleList(list(last.fuse_layers)[:1])
    return body, body.feature_info.channels()[0]
