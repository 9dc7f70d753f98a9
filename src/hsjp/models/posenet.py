"""The pose network = backbone + heatmap head, and the single factory that builds every variant.

The head's channel count is a parameter: K keypoints for pose, rows x cols puzzle pieces for the
HSJP pretext. Everything else, backbone included, is the same network, which is what lets the
pretext weights initialise the pose model.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from hsjp.errors import ConfigError, brief
from hsjp.models.hrnet import hrnet_backbone
from hsjp.models.simplebaseline import deconv_head, final_conv, resnet_backbone

ARCHS: dict[str, str] = {
    **{f"resnet{d}": "simplebaseline" for d in (18, 34, 50, 101, 152)},
    # timm's 0.4 M-parameter ResNet: for tests and smoke runs (checkpoints of a few MB, not 185 as for ResNet-18)
    "test_resnet": "simplebaseline",
    **{n: "hrnet" for n in ("hrnet_w18_small_v2", "hrnet_w18", "hrnet_w32", "hrnet_w48")},
}

_BACKBONES: dict[str, Callable[[str, bool], tuple[nn.Module, int]]] = {
    "simplebaseline": resnet_backbone,
    "hrnet": hrnet_backbone,
}


class PoseNet(nn.Module):
    """Image (N, 3, H, W) -> heatmaps (N, C, H/4, W/4)."""

    def __init__(self, arch: str, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.head = head

    @property
    def num_outputs(self) -> int:
        last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        return last.out_features if isinstance(last, nn.Linear) else last.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


def kaiming_init(module: nn.Module) -> None:
    """Re-initialise every conv with Kaiming-normal (fan_out, ReLU) and BN to identity: 'scratch'."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def classifier_head(in_channels: int, num_classes: int, hidden: int = 512) -> nn.Sequential:
    """Global pooling and a small MLP: the classification jigsaw's head (one logit per permutation)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, num_classes))


def create_model(arch: str, num_outputs: int, init: str = "scratch", deconv_channels: int = 256,
                 transfer: str = "network", head: str = "heatmap") -> PoseNet:
    """Build a pose network; ``init`` is 'scratch', 'imagenet' or a path to a weights file.

    ``transfer`` says what a weights file fills ('backbone' or 'network', see ``ModelConfig``);
    ``head`` is 'heatmap' (pose and HSJP) or 'classifier' (the classification jigsaw's pooled MLP).
    """
    family = ARCHS.get(arch)
    if family is None:
        raise ConfigError(f"unknown model.arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if init == "imagenet":
        backbone, channels = _imagenet_backbone(arch, family)
    else:
        backbone, channels = _BACKBONES[family](arch, False)
        kaiming_init(backbone)
    if head == "classifier":
        layers = classifier_head(channels, num_outputs)
    elif family == "simplebaseline":
        layers = deconv_head(channels, num_outputs, deconv_channels)
    else:
        layers = final_conv(channels, num_outputs)
    model = PoseNet(arch, backbone, layers)
    if init not in ("scratch", "imagenet"):
        from hsjp.models.weights import load_pretrained

        load_pretrained(model, init, transfer)
    return model


def _imagenet_backbone(arch: str, family: str) -> tuple[nn.Module, int]:
    """timm's ImageNet weights; they must be downloaded, so offline this fails with advice."""
    try:
        return _BACKBONES[family](arch, True)
    except Exception as e:  # timm/huggingface raise many different network errors
        raise ConfigError(
            f"ImageNet weights for {arch} could not be loaded ({brief(e)}); "
            "without network access, download a timm checkpoint elsewhere and pass its path as model.init=PATH"
        ) from None
