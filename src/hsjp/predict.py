"""``hsjp predict``: keypoints on your own photos, folders and videos, with overlays.

Boxes come from a COCO detection file, a torchvision person detector or the whole image; keypoints
from :class:`hsjp.PoseEstimator` (the path ``evaluate`` scores). Writes ``OUT/keypoints_results.json``
(COCO results plus ``file_name``, and ``frame`` for videos), ``OUT/overlays/NAME.jpg`` per image and
``OUT/overlays/NAME.mp4`` per video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from hsjp.api import PoseEstimator, PosePrediction
from hsjp.data.annotations import IMAGE_SUFFIXES
from hsjp.data.validate import read_image
from hsjp.detection import COCO_PERSON, DetectionFile, PersonDetector
from hsjp.errors import ConfigError, DataError
from hsjp.evaluation.topdown import keypoint_record
from hsjp.io import atomic_write_bytes, atomic_write_json
from hsjp.viz import draw_keypoints

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
NMS_THR = 0.9  # as `hsjp evaluate` for detector boxes
COLORS = [(255, 64, 64), (64, 160, 255), (64, 220, 64), (255, 200, 0), (220, 64, 255), (0, 220, 220)]

#: frames (RGB) and their (file name, frame, image id) -> one (N, 5) box array or None (whole image) each
BoxSource = Callable[[list[np.ndarray], list[tuple[str, int | None, int | None]]], list[np.ndarray | None]]


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image and video files, folders expanded to their images (sorted); anything else is an error."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise DataError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
            files.extend(found)
        elif not p.is_file():
            raise DataError(f"{p}: no such file or folder")
        elif p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            files.append(p)
        else:
            raise DataError(f"{p}: neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a video "
                            f"({', '.join(VIDEO_SUFFIXES)})")
    return files


def box_source(boxes: str | None, whole_image: bool, detector: bool, detector_model: str,
               detector_weights: str | None, device: str, detector_score: float) -> tuple[BoxSource, float | None]:
    """The chosen box source, and the OKS-NMS threshold its boxes need (none for whole images)."""
    if sum((boxes is not None, whole_image, detector)) != 1:
        raise ConfigError("choose one box source: --boxes DETS.json, --detector or --whole-image")
    if whole_image:
        return (lambda frames, keys: [None] * len(frames)), None
    if boxes is not None:
        dets = DetectionFile(boxes)
        return (lambda frames, keys: [dets.boxes(*k) for k in keys]), NMS_THR
    model = PersonDetector(detector_model, detector_weights, device, detector_score)
    return (lambda frames, keys: model(frames)), NMS_THR


def draw_prediction(image: np.ndarray, pred: PosePrediction, min_score: float = 0.0,
                    keypoint_thr: float = 0.2) -> np.ndarray:
    """Each person scoring at least ``min_score``: its box, skeleton and score, one colour per person."""
    out = image.copy()
    thick = max(1, round(min(image.shape[:2]) / 300))
    for i in np.flatnonzero(pred.scores >= min_score):
        color = COLORS[i % len(COLORS)]
        x, y, w, h = (int(round(v)) for v in pred.boxes[i])
        draw_keypoints(out, pred.keypoints[i], [list(p) for p in pred.skeleton], keypoint_thr, color, inplace=True)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        cv2.putText(out, f"{pred.scores[i]:.2f}", (x + 2, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick + 0.1, color, thick, cv2.LINE_AA)
    return out


def result_records(pred: PosePrediction, image_id: int, file_name: str, frame: int | None) -> list[dict]:
    extra = {"frame": frame} if frame is not None else {}
    return [keypoint_record(image_id, COCO_PERSON, kpts, score, file_name=file_name, **extra)
            for kpts, score in zip(pred.keypoints, pred.scores)]


@dataclass
class Predictor:
    """What every chunk of images or frames goes through: boxes, keypoints, results, overlays."""

    estimator: PoseEstimator
    boxes: BoxSource
    nms_thr: float | None
    batch_size: int
    min_score: float
    keypoint_thr: float

    def __call__(self, frames: list[np.ndarray], keys: list[tuple[str, int | None, int | None]],
                 ids: list[int]) -> tuple[list[dict], list[np.ndarray]]:
        preds = self.estimator.predict_many(frames, self.boxes(frames, keys), self.batch_size, self.nms_thr)
        results = [r for pred, (name, frame, _), i in zip(preds, keys, ids) for r in result_records(pred, i, name, frame)]
        drawn = [draw_prediction(f, p, self.min_score, self.keypoint_thr) for f, p in zip(frames, preds)]
        return results, drawn


def _numeric_ids(files: list[Path]) -> dict[Path, int] | None:
    """COCO-style image ids from numeric file stems, when every input is such an image and they are unique."""
    if not all(f.suffix.lower() in IMAGE_SUFFIXES and f.stem.isdigit() for f in files):
        return None
    ids = {f: int(f.stem) for f in files}
    return ids if len(set(ids.values())) == len(ids) else None


def _unique(name: str, used: set[str]) -> str:
    stem, n = name, 1
    while name in used:
        name, n = f"{stem}-{n}", n + 1
    used.add(name)
    return name


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def _jpeg(image_rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise DataError("cannot encode an overlay as JPEG")
    return data.tobytes()


def _frames(path: Path, chunk: int) -> Iterator[tuple[list[np.ndarray], float, int]]:
    """A video's RGB frames in chunks, with its frame rate and (approximate) frame count."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: cannot open video (not a video OpenCV can decode)")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        buffer, read_any = [], False
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            read_any = True
            buffer.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if len(buffer) == chunk:
                yield buffer, fps, total
                buffer = []
        if not read_any:
            raise DataError(f"{path}: no frame could be decoded")
        if buffer:
            yield buffer, fps, total
    finally:
        cap.release()


def _predict_video(path: Path, predictor: Predictor, out_mp4: Path, first_id: int, chunk: int,
                   results: list[dict]) -> int:
    """Every frame of one video; returns the next free image id. The MP4 is renamed into place at the end."""
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_mp4.with_name(f".{out_mp4.name}.tmp.mp4")
    writer, frame_no = None, 0
    bar = tqdm(desc=path.name, unit="frame", disable=None)
    try:
        for frames, fps, total in _frames(path, chunk):
            if writer is None:
                bar.total = total or None
                h, w = frames[0].shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f"cannot write an MP4 video (OpenCV's writer refused {tmp})")
            keys = [(path.name, frame_no + i, None) for i in range(len(frames))]
            ids = list(range(first_id + frame_no, first_id + frame_no + len(frames)))
            recs, drawn = predictor(frames, keys, ids)
            results.extend(recs)
            for image in drawn:
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            frame_no += len(frames)
            bar.update(len(frames))
        writer.release()
        os.replace(tmp, out_mp4)
    finally:
        bar.close()
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    return first_id + frame_no


def run_predict(ckpt: str, inputs: list[str], out: str | Path, boxes: str | None = None, whole_image: bool = False,
                detector: bool = False, detector_model: str = "fasterrcnn_resnet50_fpn",
                detector_weights: str | None = None, detector_score: float = 0.5, device: str = "cpu",
                batch_size: int = 32, flip_test: bool = True, min_score: float = 0.0,
                keypoint_thr: float = 0.2) -> dict:
    """Predict every input and write results and overlays; returns counts for the summary line."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, not {batch_size}")
    out = Path(out)
    files = collect_inputs(inputs)
    source, nms_thr = box_source(boxes, whole_image, detector, detector_model, detector_weights, device,
                                 detector_score)
    estimator = PoseEstimator.from_checkpoint(ckpt, device=device, flip_test=flip_test)
    predictor = Predictor(estimator, source, nms_thr, batch_size, min_score, keypoint_thr)
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    numeric = _numeric_ids(files)
    ids = {f: (numeric[f] if numeric else i) for i, f in enumerate(images)}
    used: set[str] = set()
    results: list[dict] = []
    with tqdm(total=len(images), desc="images", unit="image", disable=None if images else True) as bar:
        for chunk in _chunks(images, batch_size):
            frames = [read_image(str(f)) for f in chunk]
            keys = [(f.name, None, ids[f] if numeric else None) for f in chunk]
            recs, drawn = predictor(frames, keys, [ids[f] for f in chunk])
            results.extend(recs)
            for f, image in zip(chunk, drawn):
                atomic_write_bytes(out / "overlays" / f"{_unique(f.stem, used)}.jpg", _jpeg(image))
            bar.update(len(chunk))
    next_id = max(ids.values(), default=-1) + 1
    for video in videos:
        next_id = _predict_video(video, predictor, out / "overlays" / f"{_unique(video.stem, used)}.mp4", next_id,
                                 batch_size, results)
    atomic_write_json(out / "keypoints_results.json", results, indent=None)
    return {"images": len(images), "videos": len(videos), "persons": len(results)}
