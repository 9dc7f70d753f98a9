"""``hsjp evaluate``: a trained checkpoint on any COCO keypoint file, with ground-truth or detector boxes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hsjp.api import PoseEstimator
from hsjp.data.annotations import load_annotations
from hsjp.errors import CheckpointError, DataError
from hsjp.evaluation.metrics import format_table, keypoint_subset, only_keypoints
from hsjp.evaluation.topdown import detection_records, evaluate_predictions
from hsjp.io import atomic_write_json


def evaluate_checkpoint(ckpt: str, ann: str, images: str, out: str | Path, boxes: str | None = None,
                        flip_test: bool = True, batch_size: int = 32, num_workers: int = 2,
                        nms_thr: float = 0.9, quiet: bool = False, show: int = 0,
                        keypoints: str | None = None) -> dict[str, float]:
    """Predict every person box of ``ann`` (or of ``boxes``), write COCO results and metrics.

    ``ckpt`` is a finetune checkpoint or an ``hsjp export`` file (safetensors or ONNX); prediction is
    :class:`hsjp.PoseEstimator`'s, so ``hsjp predict`` gives these very keypoints.

    ``show`` > 0 also draws that many predicted persons into ``OUT/predictions.png``: a number can
    hide a systematic error (swapped sides, a constant offset) that one look reveals.
    ``keypoints`` scores only that subset (e.g. ``5-16``, what LSPET labels), so a model is not
    judged on joints its training data never showed it; the results file still holds all of them.
    """
    out = Path(out)
    estimator = PoseEstimator.from_checkpoint(ckpt, flip_test=flip_test)
    anns = load_annotations(ann, images)
    if anns.num_keypoints != estimator.num_keypoints:
        raise CheckpointError(f"{ckpt}: predicts {estimator.num_keypoints} keypoints but {ann} has {anns.num_keypoints}")
    subset = {}
    if keypoints is not None:
        subset["keypoints"] = keypoint_subset(keypoints, anns.num_keypoints, anns.keypoint_names)
        anns = dataclasses.replace(anns, coco=only_keypoints(anns.coco, subset["keypoints"]))
    records = detection_records(boxes, anns) if boxes else anns.persons(require_keypoints=True)
    if not records:
        raise DataError(f"{boxes or ann}: no person boxes to evaluate")
    preds = estimator.predict_records(records, batch_size, num_workers)
    results, metrics = evaluate_predictions(preds, anns, estimator.spec.oks_sigmas, nms_thr if boxes else None)
    atomic_write_json(out / "keypoints_results.json", results, indent=None)
    source = f"detector boxes from {boxes}" if boxes else "ground-truth boxes"
    atomic_write_json(out / "metrics.json", {**metrics, "boxes": source, "checkpoint": str(ckpt),
                                             "annotations": str(ann), "flip_test": flip_test, **subset})
    if show > 0 and results:
        from hsjp.viz import plot_predictions

        plot_predictions(results, anns, out / "predictions.png", show)
    if not quiet:
        only = f", keypoints {keypoints} only" if subset else ""
        print(format_table(metrics, f"{Path(ann).name}: {len(records)} persons, {source}{only}"))
        if "PCK@0.1" in metrics:
            print(f"PCK@0.1 {metrics['PCK@0.1']:.3f}")
    return metrics
