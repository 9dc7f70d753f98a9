"""SimpleBaseline (Xiao et al., 2018): a timm ResNet and three stride-2 deconvolutions."""

from __future__ import annotations

import timm
from torch import nn


def resnet_backbone(name: str, pretrained: bool = False) -> tuple[nn.Module, int]:
    """The ResNet up to its last stage (stride 32), and that stage's channel count."""
    backbone = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(-1,))
    return backbone, backbone.feature_info.channels()[-1]


def deconv_head(in_channels: int, out_channels: int, channels: int = 256, num_deconv: int = 3) -> nn.Sequential:
    """Upsample stride 32 -> 4 with 4x4 stride-2 deconvolutions, then a 1x1 conv to the heatmaps."""
    layers: list[nn.Module] = []
    for _ in range(num_deconv):
        deconv = nn.ConvTranspose2d(in_channels, channels, 4, stride=2, padding=1, bias=False)
        nn.init.normal_(deconv.weight, std=0.001)
        layers += [deconv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        in_channels = channels
    layers.append(final_conv(in_channels, out_channels))
    return nn.Sequential(*layers)


def final_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 conv to one heatmap per output channel, initialised as in the official code."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.normal_(conv.weight, std=0.001)
    nn.init.zeros_(conv.bias)
    return conv
