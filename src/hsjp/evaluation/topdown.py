"""Top-down inference: crops -> heatmaps (with flip test) -> keypoints in image pixels -> COCO results.

Shared by validation during training and by ``hsjp evaluate``, so the AP logged while training is
computed exactly as the AP reported at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hsjp.data.annotations import KeypointAnnotations, PersonRecord
from hsjp.data.geometry import flip_heatmaps, transform_points
from hsjp.data.validate import read_json, validate_detections
from hsjp.evaluation.metrics import coco_keypoint_stats, oks_sigmas
from hsjp.evaluation.nms import oks_nms, rescore
from hsjp.evaluation.pck import pck
from hsjp.heatmaps import HeatmapCodec


@torch.no_grad()
def predict_heatmaps(model: torch.nn.Module, images: torch.Tensor, flip_pairs: list[tuple[int, int]],
                     flip_test: bool = True) -> torch.Tensor:
    """Heatmaps of a batch; with ``flip_test`` averaged with those of the mirrored batch.

    The mirrored maps are flipped back, their left/right channels swapped, and shifted one pixel
    right, as in the official SimpleBaseline / HRNet test code (it undoes the half-pixel bias of
    flipping about the image edge rather than the pixel centres at heatmap resolution).
    """
    heatmaps = model(images)
    if flip_test:
        flipped = flip_heatmaps(model(images.flip(-1)), flip_pairs)
        flipped[..., 1:] = flipped[..., :-1].clone()
        heatmaps = (heatmaps + flipped) * 0.5
    return heatmaps


def decode_batch(heatmaps: torch.Tensor, meta: dict, codec: HeatmapCodec) -> list[dict]:
    """One prediction per crop: keypoints (K, 3) in image pixels with scores, plus its box info."""
    coords, scores = codec.decode(heatmaps.float().cpu().numpy())
    inv = meta["crop_to_image"].cpu().numpy()
    preds = []
    for i in range(coords.shape[0]):
        xy = transform_points(coords[i], inv[i])
        preds.append({
            "ann_id": int(meta["ann_id"][i]),
            "image_id": int(meta["image_id"][i]),
            "keypoints": np.concatenate([xy, scores[i][:, None]], axis=1),
            "box_score": float(meta["score"][i]),
            "area": float(meta["area"][i]),
        })
    return preds


def select_persons(preds: list[dict], sigmas: np.ndarray | None, nms_thr: float | None = None,
                   kpt_thr: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Person scores (box score rescored by keypoint confidence) and the indices that survive
    OKS-NMS per image (all of them without ``nms_thr``): the one rule for evaluation and prediction."""
    kpts = np.stack([p["keypoints"] for p in preds])
    scores = rescore(kpts[:, :, 2], np.array([p["box_score"] for p in preds]), kpt_thr)
    if nms_thr is None:
        return scores, np.arange(len(preds))
    kept = []
    image_ids = np.array([p["image_id"] for p in preds])
    areas = np.array([p["area"] for p in preds])
    for image_id in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == image_id)
        kept.extend(idx[oks_nms(kpts[idx], scores[idx], areas[idx], nms_thr, sigmas)])
    return scores, np.array(sorted(kept))


def keypoint_record(image_id: int, category_id: int, keypoints: np.ndarray, score: float, **extra) -> dict:
    """One COCO keypoint result; ``extra`` fields (``file_name``, ``frame``) go after ``image_id``."""
    return {"image_id": image_id, **extra, "category_id": category_id,
            "keypoints": [round(float(v), 3) for v in np.asarray(keypoints).reshape(-1)], "score": float(score)}


def to_coco_results(preds: list[dict], category_id: int, sigmas: np.ndarray | None,
                    nms_thr: float | None = None, kpt_thr: float = 0.2) -> list[dict]:
    """COCO keypoint results; scores rescored by keypoint confidence, optionally OKS-NMS per image."""
    if not preds:
        return []
    kpts = np.stack([p["keypoints"] for p in preds])
    scores, keep = select_persons(preds, sigmas, nms_thr, kpt_thr)
    return [keypoint_record(preds[i]["image_id"], category_id, kpts[i], scores[i]) for i in keep]


def evaluate_predictions(preds: list[dict], anns: KeypointAnnotations, sigmas: list[float] | None = None,
                         nms_thr: float | None = None) -> tuple[list[dict], dict[str, float]]:
    """COCO results and metrics (OKS AP/AR, plus PCK@0.1 when the boxes are the ground-truth ones)."""
    unique = list({p["ann_id"]: p for p in preds}.values())  # DDP pads the last batch with repeats
    s = oks_sigmas(anns.num_keypoints, sigmas)
    results = to_coco_results(unique, anns.person_category_id, s, nms_thr)
    metrics = coco_keypoint_stats(anns.coco, results, s)
    if nms_thr is None and unique:
        gt = [anns.coco.anns[p["ann_id"]] for p in unique]
        gt_kpts = np.array([g["keypoints"] for g in gt], dtype=np.float32).reshape(len(gt), -1, 3)
        pred_kpts = np.stack([p["keypoints"][:, :2] for p in unique])
        metrics["PCK@0.1"] = pck(pred_kpts, gt_kpts[..., :2], gt_kpts[..., 2] > 0,
                                 np.array([g["bbox"] for g in gt], dtype=np.float32), 0.1)
    return results, metrics


def detection_records(path: str | Path, anns: KeypointAnnotations, score_thr: float = 0.0) -> list[PersonRecord]:
    """Person boxes from a COCO detection-results file scoring at least ``score_thr``, each checked
    by :func:`hsjp.data.validate.validate_detections` and named on failure."""
    dets = validate_detections(read_json(path, "detection"), str(path), set(anns.coco.imgs), anns.person_category_id)
    k = anns.num_keypoints
    return [PersonRecord(i, d["image_id"], anns.image_path(d["image_id"]), tuple(d["bbox"]),
                         np.zeros((k, 3), np.float32), d["score"])
            for i, d in enumerate(dets) if d["score"] >= score_thr]
