"""Keypoint <-> Gaussian-heatmap codec (the MSRA / SimpleBaseline encoding).

Encoding and decoding live in one object so that they cannot drift apart: whatever convention
``encode`` uses to place a peak, ``decode`` inverts. Coordinates are in pixels of the network input
(the person crop); a heatmap pixel covers ``stride`` input pixels per axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def gaussian_heatmaps(centers: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Render one unnormalised Gaussian (peak 1) per row of ``centers`` (K, 2) in heatmap pixels.

    The Gaussian is separable, so it is built as the outer product of two 1-D profiles: O(K(w+h))
    exponentials instead of O(Kwh). Returns float32 (K, h, w).
    """
    w, h = size
    centers = np.asarray(centers, dtype=np.float32).reshape(-1, 2)
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    gx = np.exp(-((xs[None, :] - centers[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - centers[:, 1:]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def argmax_quarter_offset(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak of each map, moved a quarter pixel toward its higher neighbour on each axis.

    ``heatmaps`` is (..., h, w); returns coordinates (..., 2) as (x, y) in heatmap pixels and the
    peak values (...). The quarter shift halves the quantisation error of a plain argmax.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    *lead, h, w = heatmaps.shape
    flat = heatmaps.reshape(-1, h * w)
    idx = flat.argmax(axis=1)
    scores = flat[np.arange(flat.shape[0]), idx]
    x = idx % w
    y = idx // w
    maps = heatmaps.reshape(-1, h, w)
    rows = np.arange(maps.shape[0])
    # no shift on the border, where one neighbour is missing (as in the official code)
    dx = np.where((x > 0) & (x < w - 1),
                  maps[rows, y, np.minimum(x + 1, w - 1)] - maps[rows, y, np.maximum(x - 1, 0)], 0)
    dy = np.where((y > 0) & (y < h - 1),
                  maps[rows, np.minimum(y + 1, h - 1), x] - maps[rows, np.maximum(y - 1, 0), x], 0)
    coords = np.stack([x + 0.25 * np.sign(dx), y + 0.25 * np.sign(dy)], axis=1).astype(np.float32)
    return coords.reshape(*lead, 2), scores.reshape(lead)


@dataclass(frozen=True)
class HeatmapCodec:
    """One Gaussian heatmap per keypoint at ``heatmap_size``, for crops of ``input_size`` (both w, h)."""

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0

    @property
    def stride(self) -> np.ndarray:
        return np.array(
            [self.input_size[0] / self.heatmap_size[0], self.input_size[1] / self.heatmap_size[1]],
            dtype=np.float32,
        )

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (K, h, w) and target weights (K,) for keypoints (K, 2) in input pixels.

        A keypoint gets weight 0 and an all-zero map when it is unlabelled (``visible <= 0``) or its
        peak would fall outside the heatmap, so the loss never asks for a peak the map cannot hold.
        """
        centers = np.asarray(keypoints, dtype=np.float32) / self.stride
        w, h = self.heatmap_size
        inside = (
            (centers[:, 0] >= -0.5) & (centers[:, 0] < w - 0.5)
            & (centers[:, 1] >= -0.5) & (centers[:, 1] < h - 0.5)
        )
        weights = ((np.asarray(visible) > 0) & inside).astype(np.float32)
        heatmaps = gaussian_heatmaps(centers, self.heatmap_size, self.sigma) * weights[:, None, None]
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (..., K, 2) in input pixels and their scores (..., K) from heatmaps (..., K, h, w)."""
        coords, scores = argmax_quarter_offset(heatmaps)
        return coords * self.stride, scores
