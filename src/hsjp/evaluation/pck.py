"""PCK: a quick, box-normalised keypoint accuracy for validation curves and sanity checks.

OKS AP needs a full COCO evaluation; PCK is a single number computable from arrays in a training
loop. Normalising by the larger side of the person box makes it independent of image resolution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pck"]


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    boxes: np.ndarray,
    thr: float = 0.1,
) -> float:
    """Share of labelled keypoints whose error is under ``thr`` × max(box w, box h).

    ``pred`` and ``gt`` are (N, K, 2), ``visible`` (N, K) bool marks the labelled keypoints,
    ``boxes`` are (N, 4) xywh. NaN-safe: a ground-truth keypoint with a non-finite coordinate is
    treated as unlabelled, while a non-finite prediction (or box) counts as a miss, so a
    diverging network cannot score by producing NaNs. Returns ``nan`` when nothing is labelled,
    since there is no accuracy to report (not 0, which would read as "all wrong").
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    boxes = np.asarray(boxes, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2), got {pred.shape} and {gt.shape}")
    if visible.shape != pred.shape[:2]:
        raise ValueError(f"visible must be (N, K) = {pred.shape[:2]}, got {visible.shape}")
    if boxes.shape != (pred.shape[0], 4):
        raise ValueError(f"boxes must be (N, 4) = ({pred.shape[0]}, 4), got {boxes.shape}")
    labelled = visible & np.all(np.isfinite(gt), axis=-1)
    n = int(labelled.sum())
    if n == 0:
        return float("nan")
    norm = np.maximum(boxes[:, 2], boxes[:, 3])  # NaN propagates -> miss
    with np.errstate(invalid="ignore"):
        err = np.linalg.norm(pred - gt, axis=-1)
        hit = err < thr * norm[:, None]  # False for any NaN
    return float((hit & labelled).sum() / n)
