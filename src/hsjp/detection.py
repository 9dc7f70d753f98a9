"""Person boxes for ``hsjp predict``: a torchvision detector, or a COCO detection-results file.

Top-down pose needs a box per person. The detector is torchvision's Faster R-CNN (COCO-trained, person
= label 1); its weights come from torchvision's download or a local file, and offline without a file
that is said in one line with the two other box sources. A detection file is checked by
:func:`hsjp.data.validate.validate_detections`, the rule ``hsjp evaluate --boxes`` applies.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from hsjp.data.validate import read_json, validate_detections
from hsjp.errors import CheckpointError, ConfigError, DataError, brief

DETECTORS = ("fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn")
COCO_PERSON = 1  # the person category (and torchvision's detection label) in COCO


def person_boxes(output: dict, score_thr: float = 0.5) -> np.ndarray:
    """One detector output (``boxes`` x1, y1, x2, y2; ``labels``; ``scores``) as (N, 5) x, y, w, h, score
    of the persons scoring at least ``score_thr``; degenerate boxes (under a pixel) are dropped."""
    boxes = output["boxes"].detach().float().cpu().numpy().reshape(-1, 4)
    labels = output["labels"].detach().cpu().numpy()
    scores = output["scores"].detach().float().cpu().numpy()
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = (labels == COCO_PERSON) & (scores >= score_thr) & (wh >= 1).all(axis=1)
    return np.concatenate([boxes[keep, :2], wh[keep], scores[keep, None]], axis=1).astype(np.float64)


class PersonDetector:
    """A torchvision Faster R-CNN returning person boxes per RGB image."""

    def __init__(self, name: str = DETECTORS[0], weights: str | os.PathLike | None = None, device: str = "cpu",
                 score_thr: float = 0.5):
        import torchvision.models.detection as tvd

        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
        build = getattr(tvd, name)
        if weights is None:
            try:  # torch.hub announces the download on stdout: keep a failure to our one line
                with contextlib.redirect_stdout(io.StringIO()):
                    model = build(weights="DEFAULT", box_score_thresh=score_thr)
            except Exception as e:  # urllib / http / hub errors vary with what the network refused
                raise ConfigError(f"the {name} detector's weights could not be downloaded ({brief(e)}); pass a local "
                                  "state-dict file with --detector-weights FILE, or give boxes with --boxes DETS.json "
                                  "or --whole-image") from None
        else:
            from hsjp.models.weights import read_state_dict

            model = build(weights=None, weights_backbone=None, box_score_thresh=score_thr)
            state, _ = read_state_dict(weights)
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise CheckpointError(f"{weights}: not {name} weights ({brief(e)})") from None
        self.model = model.eval().to(device)
        self.device = device
        self.score_thr = score_thr

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        batch = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float().div(255).to(self.device)
                 for im in images]
        return [person_boxes(o, self.score_thr) for o in self.model(batch)]


class DetectionFile:
    """Boxes of a COCO detection-results file, looked up by file name (and ``frame`` for a video) or by
    image id, which for COCO-named images (``000000000139.jpg``) is the file's numeric stem."""

    def __init__(self, path: str | os.PathLike):
        raw = read_json(path, "detection")
        if not isinstance(raw, list):
            validate_detections(raw, str(path), set(), COCO_PERSON)  # raises the one-line top-level error
        # every record is checked here (box, score, category), named by its index in the file; which
        # image it belongs to is resolved below, since there is no ground truth to know the ids from
        ids = {d["image_id"] for d in raw if isinstance(d, dict) and isinstance(d.get("image_id"), int)} | {-1}
        named = [{"image_id": -1, **d} if isinstance(d, dict) else d for d in raw]
        checked = validate_detections(named, str(path), ids, COCO_PERSON)
        self.by_name: dict[tuple[str, int | None], list[list[float]]] = {}
        self.by_id: dict[int, list[list[float]]] = {}
        for i, (rec, det) in enumerate(zip(raw, checked)):
            box = [*det["bbox"], det["score"]]
            frame = rec.get("frame")
            if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool) or frame < 0):
                raise DataError(f"{path}: record {i}: frame {frame!r} is not a frame index (an integer >= 0)")
            if isinstance(rec.get("file_name"), str):
                self.by_name.setdefault((Path(rec["file_name"]).name, frame), []).append(box)
            elif "image_id" in rec:
                self.by_id.setdefault(det["image_id"], []).append(box)
        self.path = path

    def boxes(self, file_name: str, frame: int | None, image_id: int | None) -> np.ndarray:
        """(N, 5) boxes of one image or video frame; none found is zero persons, not an error."""
        found = self.by_name.get((file_name, frame), [])
        if image_id is not None and frame is None:
            found = found + self.by_id.get(image_id, [])
        return np.array(found, dtype=np.float64).reshape(-1, 5)
