"""Person box -> crop geometry: centre/scale, the affine warp, and the points that follow it.

One affine matrix maps image pixels to crop pixels; the image, the keypoints and (inverted) the
predictions all go through that same matrix, so they cannot disagree about where a pixel is.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def box_to_center_scale(bbox: tuple[float, float, float, float], aspect_ratio: float,
                        padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) size in pixels of the crop around a box, widened to the crop's aspect.

    ``aspect_ratio`` is crop width / height. The box grows on one axis until it has that ratio and
    then by ``padding`` on both, so the person is never squashed and keeps some context.
    """
    x, y, w, h = bbox
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float32) * padding


def affine_matrix(center: np.ndarray, scale: np.ndarray, rotation: float,
                  output_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) matrix taking image pixels to crop pixels.

    The region of size ``scale`` centred on ``center``, rotated by ``rotation`` degrees
    (counter-clockwise, as in the official HRNet code), fills an ``output_size`` (w, h) crop.
    """
    out_w, out_h = output_size
    sx, sy = out_w / float(scale[0]), out_h / float(scale[1])
    r = math.radians(rotation)
    cos, sin = math.cos(r), math.sin(r)
    # translate centre to origin, rotate, scale, translate to the crop centre
    a = np.array([[cos, sin], [-sin, cos]], dtype=np.float64) * np.array([[sx], [sy]])
    t = np.array([out_w * 0.5, out_h * 0.5]) - a @ np.asarray(center, dtype=np.float64)
    return np.hstack([a, t[:, None]]).astype(np.float32)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix.astype(np.float64)).astype(np.float32)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (..., 2)."""
    points = np.asarray(points, dtype=np.float32)
    return points @ matrix[:, :2].T + matrix[:, 2]


BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


def warp(image: np.ndarray, matrix: np.ndarray, output_size: tuple[int, int], border: str = "constant") -> np.ndarray:
    """Affine warp; ``border`` fills what lies outside the image (black, the official recipe, or image content)."""
    return cv2.warpAffine(image, matrix, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR,
                          borderMode=BORDERS[border])


def flip_keypoints(keypoints: np.ndarray, width: int, flip_pairs: list[tuple[int, int]]) -> np.ndarray:
    """Mirror (K, 3) keypoints in an image of ``width`` pixels and swap left/right labels."""
    out = keypoints.copy()
    out[:, 0] = width - 1 - out[:, 0]
    for i, j in flip_pairs:
        out[[i, j]] = out[[j, i]]
    return out


def flip_heatmaps(heatmaps, flip_pairs: list[tuple[int, int]]):
    """Mirror (..., K, h, w) heatmaps (numpy or torch) and swap left/right channels."""
    flipped = heatmaps[..., ::-1] if isinstance(heatmaps, np.ndarray) else heatmaps.flip(-1)
    order = list(range(flipped.shape[-3]))
    for i, j in flip_pairs:
        order[i], order[j] = j, i
    return flipped[..., order, :, :]
