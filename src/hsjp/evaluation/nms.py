"""OKS non-maximum suppression and rescoring for top-down inference on detector boxes.

A person detector often returns several boxes for one person; the pose network then predicts
nearly the same skeleton in each, and every duplicate that survives counts as a false positive in
COCO AP. The official HRNet and mmpose pipelines therefore (1) rescore each pose as box score ×
mean confident-keypoint score, so the score ranks pose quality rather than box quality, and
(2) greedily drop poses whose OKS with a better-scored pose exceeds a threshold (0.9). This module
reproduces that behaviour so our AP on detected boxes is comparable with theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hsjp.evaluation.metrics import oks_sigmas

__all__ = ["oks_iou", "oks_nms", "rescore"]


def _as_nk3(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 2:
        if d.shape[1] % 3 != 0:
            raise ValueError(f"keypoints of shape {d.shape}: the last axis must hold x, y, score triples")
        d = d.reshape(d.shape[0], -1, 3)
    if d.ndim != 3 or d.shape[2] != 3:
        raise ValueError(f"keypoints must have shape (N, K, 3) or (N, 3K), got {d.shape}")
    return d


def oks_iou(
    g: np.ndarray,
    d: np.ndarray,
    area_g: float,
    areas_d: np.ndarray,
    sigmas: np.ndarray,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS between one pose ``g`` and each of the ``N`` poses in ``d`` (mmpose's ``oks_iou``).

    Unlike COCOeval's OKS (against a ground truth with visibility flags and a mask area) both sides
    are predictions, so the scale is the mean of the two areas and, by default, every keypoint
    counts. With ``vis_thr`` only keypoints whose score exceeds it in both poses count; a pair with
    no such keypoint has OKS 0. ``g`` is (K, 3) or (3K,), ``d`` is (N, K, 3) or (N, 3K).
    """
    g = np.asarray(g, dtype=np.float64).reshape(-1, 3)
    d = _as_nk3(d)
    if d.shape[1] != g.shape[0]:
        raise ValueError(f"g has {g.shape[0]} keypoints but d has {d.shape[1]}")
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sigmas.shape[0] != g.shape[0]:
        raise ValueError(f"{sigmas.shape[0]} sigmas for {g.shape[0]} keypoints")
    areas_d = np.asarray(areas_d, dtype=np.float64).reshape(-1)
    variances = (sigmas * 2) ** 2
    dx = d[:, :, 0] - g[None, :, 0]
    dy = d[:, :, 1] - g[None, :, 1]
    scale = (area_g + areas_d) / 2 + np.spacing(1)
    e = (dx**2 + dy**2) / variances[None, :] / scale[:, None] / 2
    if vis_thr is None:
        return np.exp(-e).mean(axis=1) if e.shape[1] else np.zeros(len(d))
    mask = (g[None, :, 2] > vis_thr) & (d[:, :, 2] > vis_thr)
    count = mask.sum(axis=1)
    total = np.where(mask, np.exp(-e), 0.0).sum(axis=1)
    return np.divide(total, count, out=np.zeros(len(d)), where=count > 0)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: Sequence[float] | None = None,
    vis_thr: float | None = None,
) -> list[int]:
    """Greedy OKS-NMS: indices of the poses kept, highest score first.

    Repeatedly keep the best-scored remaining pose and drop every remaining pose whose OKS with
    it is above ``thr`` (as mmpose's ``oks_nms``). ``areas`` are the poses' box areas (w × h) and
    set the OKS scale. Equal scores keep their input order. ``sigmas`` default to
    :func:`~hsjp.evaluation.metrics.oks_sigmas` for the keypoint count (COCO's for 17).
    """
    kpts = _as_nk3(keypoints) if len(keypoints) else np.zeros((0, 0, 3))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    n = kpts.shape[0]
    if scores.shape[0] != n or areas.shape[0] != n:
        raise ValueError(f"{n} poses but {scores.shape[0]} scores and {areas.shape[0]} areas")
    if n == 0:
        return []
    sig = oks_sigmas(kpts.shape[1], sigmas)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sig, vis_thr)
        order = rest[ovr <= thr]
    return keep


def rescore(keypoint_scores: np.ndarray, box_scores: np.ndarray, kpt_thr: float = 0.2) -> np.ndarray:
    """Pose score = box score × mean of the keypoint scores above ``kpt_thr`` (mmpose / HRNet).

    Only confident keypoints enter the mean so that occluded joints, which a good pose may
    legitimately miss, do not drag its score down. A pose with no keypoint above the threshold
    gets score 0, as in mmpose (its mean is taken as 0, not NaN).
    """
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    if ks.ndim != 2:
        raise ValueError(f"keypoint_scores must have shape (N, K), got {ks.shape}")
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if bs.shape[0] != ks.shape[0]:
        raise ValueError(f"{ks.shape[0]} poses but {bs.shape[0]} box scores")
    above = ks > kpt_thr
    count = above.sum(axis=1)
    total = np.where(above, ks, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros(len(ks)), where=count > 0)
    return bs * mean
