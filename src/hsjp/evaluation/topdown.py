"""Top-down inference: crops -> heatmaps (with flip test) -> keypoints in image pixels -> COCO results.

Shared by validation during training and by ``hsjp evaluate``, so the AP logged while training is
computed exactly as the AP reported at the end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from hsjp.data.annotations import KeypointAnnotations, PersonRecord
from hsjp.data.geometry import flip_heatmaps, transform_points
from hsjp.errors import DataError
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


def to_coco_results(preds: list[dict], category_id: int, sigmas: np.ndarray | None,
                    nms_thr: float | None = None, kpt_thr: float = 0.2) -> list[dict]:
    """COCO keypoint results; scores rescored by keypoint confidence, optionally OKS-NMS per image."""
    if not preds:
        return []
    kpts = np.stack([p["keypoints"] for p in preds])
    scores = rescore(kpts[:, :, 2], np.array([p["box_score"] for p in preds]), kpt_thr)
    keep = np.arange(len(preds))
    if nms_thr is not None:
        kept = []
        image_ids = np.array([p["image_id"] for p in preds])
        areas = np.array([p["area"] for p in preds])
        for image_id in np.unique(image_ids):
            idx = np.flatnonzero(image_ids == image_id)
            kept.extend(idx[oks_nms(kpts[idx], scores[idx], areas[idx], nms_thr, sigmas)])
        keep = np.array(sorted(kept))
    return [{
        "image_id": preds[i]["image_id"],
        "category_id": category_id,
        "keypoints": [round(float(v), 3) for v in kpts[i].reshape(-1)],
        "score": float(scores[i]),
    } for i in keep]


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
    """Person boxes from a COCO detection-results file, each checked and named on failure."""
    path = Path(path)
    try:
        dets = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: detection file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(dets, list):
        raise DataError(f"{path}: not a COCO detection-results file (expected a list of boxes)")
    k = anns.num_keypoints
    records = []
    for i, d in enumerate(dets):
        if not isinstance(d, dict) or not {"image_id", "bbox", "score"} <= d.keys():
            raise DataError(f"{path}: record {i}: needs 'image_id', 'bbox' and 'score'")
        if d.get("category_id", anns.person_category_id) != anns.person_category_id or d["score"] < score_thr:
            continue
        box = d["bbox"]
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)):
            raise DataError(f"{path}: record {i}: bbox {box!r} is not 4 finite numbers")
        if box[2] <= 0 or box[3] <= 0:
            raise DataError(f"{path}: record {i}: bbox {box!r} has zero or negative area")
        if d["image_id"] not in anns.coco.imgs:
            raise DataError(f"{path}: record {i}: image_id {d['image_id']} is not in {anns.path}")
        records.append(PersonRecord(i, d["image_id"], anns.image_path(d["image_id"]),
                                    tuple(float(v) for v in box), np.zeros((k, 3), np.float32), float(d["score"])))
    return records
