"""Training targets for a person crop: keypoint heatmaps (pose), puzzle heatmaps (HSJP) or a puzzle class.

The heatmap targets produce the same fields (``image``, ``heatmaps``, ``weights``), so the network,
loss and training loop never need to know which task they serve; the classification-jigsaw baseline
gives a ``label`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hsjp.heatmaps import HeatmapCodec
from hsjp.jigsaw import JigsawCodec


class Target(Protocol):
    """Turns a crop (HWC uint8) and its keypoints (K, 3) in crop pixels into sample fields."""

    def __call__(self, crop: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> dict: ...


@dataclass(frozen=True)
class KeypointTarget:
    codec: HeatmapCodec

    def __call__(self, crop: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> dict:
        heatmaps, weights = self.codec.encode(keypoints[:, :2], keypoints[:, 2])
        return {"image": crop, "heatmaps": heatmaps, "weights": weights,
                "keypoints": keypoints.astype(np.float32)}


@dataclass(frozen=True)
class PuzzleTarget:
    """The crop becomes the shuffled puzzle; one heatmap per piece marks where it went."""

    codec: JigsawCodec

    def __call__(self, crop: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> dict:
        shuffled, heatmaps, permutation = self.codec.encode(crop, rng)
        return {"image": shuffled, "heatmaps": heatmaps,
                "weights": np.ones(self.codec.num_patches, dtype=np.float32), "permutation": permutation}


@dataclass(frozen=True)
class PuzzleClassTarget:
    """The classification jigsaw's target: the same shuffled crop, labelled by the permutation's index.

    It shares the codec (grid, gap, jitter, permutation set) with :class:`PuzzleTarget`, so the two
    pretexts differ only in the label and the head that reads it.
    """

    codec: JigsawCodec

    def __call__(self, crop: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> dict:
        shuffled, _, permutation = self.codec.encode(crop, rng)
        return {"image": shuffled, "label": self.codec.permutation_index(permutation), "permutation": permutation}


@dataclass(frozen=True)
class ImageOnly:
    """Inference: the crop and nothing else."""

    def __call__(self, crop: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> dict:
        return {"image": crop}
