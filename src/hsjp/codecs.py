"""Codec factories: the one place that turns a run's config into its target encoder/decoder.

Training (targets), evaluation and inference (decoding) and the puzzle pictures all build their
codec here, so the heatmap size, sigma and grid of an encode and its decode come from the same
fields, and no layer has to reach into another (evaluation into training) to get one.
"""

from __future__ import annotations

import math

from hsjp.config import Config
from hsjp.heatmaps import HeatmapCodec
from hsjp.jigsaw import JigsawCodec

#: Size of the classification jigsaw's permutation set when none is configured: Noroozi & Favaro's
#: 100 for large grids, every non-identity order where there are fewer (23 for 2x2).
CLS_PERMUTATIONS = 100


def jigsaw_codec(cfg: Config) -> JigsawCodec:
    """The puzzle codec; the classification jigsaw always draws from a fixed set (its classes)."""
    j = cfg.jigsaw
    permutations = j.permutations
    if cfg.task == "jigsaw_cls" and permutations == 0:
        permutations = min(CLS_PERMUTATIONS, math.factorial(j.grid[0] * j.grid[1]) - 1)
    return JigsawCodec(grid=tuple(j.grid), input_size=tuple(cfg.data.input_size), heatmap_size=cfg.heatmap_size,
                       sigma=j.sigma, allow_identity=j.allow_identity, gap=j.gap, color_jitter=j.color_jitter,
                       permutations=permutations, permutation_seed=j.permutation_seed)


def heatmap_codec(cfg: Config) -> HeatmapCodec:
    return HeatmapCodec(tuple(cfg.data.input_size), cfg.heatmap_size, cfg.data.sigma)
