"""Use a trained model from Python: :class:`PoseEstimator` (keypoints on your own images and boxes).

Loads a finetune checkpoint, an ``hsjp export`` safetensors file (no Lightning, no pickle) or an
exported ONNX file (ONNX Runtime), and predicts through :func:`hsjp.inference.predict_records`, the
path ``hsjp evaluate`` scores, so its keypoints are the evaluated ones::

    from hsjp import PoseEstimator
    est = PoseEstimator.from_checkpoint("runs/r18/checkpoints/last.ckpt")
    pred = est.predict("photo.jpg", boxes=[[10, 20, 80, 200]])   # x, y, w, h; None: the whole image
    pred.keypoints  # (N, K, 3): x, y, score in image pixels
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hsjp.data.annotations import PersonRecord
from hsjp.data.validate import finite_array, read_image
from hsjp.errors import ConfigError, DataError
from hsjp.evaluation.metrics import oks_sigmas
from hsjp.evaluation.topdown import select_persons
from hsjp.inference import Network, OnnxNetwork, PoseSpec, TorchNetwork, predict_records

#: An image: a file path, or an (H, W, 3) uint8 array.
ImageInput = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class PosePrediction:
    """The persons found in one image; rows are persons, in box order (minus any OKS-NMS removed)."""

    keypoints: np.ndarray  # (N, K, 3): x, y in image pixels, heatmap peak score
    scores: np.ndarray  # (N,): box score x mean confident-keypoint score, as evaluate ranks persons
    boxes: np.ndarray  # (N, 4): the x, y, w, h boxes the crops were taken around
    box_scores: np.ndarray  # (N,)
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # 1-based keypoint pairs (COCO convention)

    def __len__(self) -> int:
        return len(self.keypoints)


class PoseEstimator:
    """A pose network with what it needs to predict on its own: crop rule, codec, keypoints, flip pairs."""

    def __init__(self, network: Network, spec: PoseSpec, flip_test: bool = True, config: dict | None = None,
                 source: str = ""):
        self.network = network
        self.spec = spec
        self.flip_test = flip_test
        self.config = config  # the training run's resolved config, where the file carried one
        self.source = source

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.spec.keypoint_names

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        return self.spec.skeleton

    @property
    def num_keypoints(self) -> int:
        return self.spec.num_keypoints

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", flip_test: bool = True,
                        channels_last: bool = False, bf16: bool = False) -> PoseEstimator:
        """A finetune checkpoint (``.ckpt``), an exported ``.safetensors`` network, or an ``.onnx`` file.

        ``channels_last`` and ``bf16`` (autocast) are PyTorch speed options; they change the numbers
        slightly (see benchmarks/RESULTS.md), fp32 is what ``evaluate`` reports.
        """
        from hsjp.export import load_checkpoint_network, load_safetensors_network

        path = Path(path)
        if path.suffix == ".onnx":
            return cls.from_onnx(path, device, flip_test)
        loader = load_safetensors_network if path.suffix == ".safetensors" else load_checkpoint_network
        model, spec, config = loader(path)
        return cls(TorchNetwork(model, device, channels_last, bf16), spec, flip_test, config, str(path))

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, device: str = "cpu", flip_test: bool = True) -> PoseEstimator:
        """An ``hsjp export --format onnx`` file run by ONNX Runtime; decoding stays the same Python code."""
        from hsjp.export import onnx_session

        session, spec = onnx_session(path, device)
        return cls(OnnxNetwork(session), spec, flip_test, source=str(path))

    def predict(self, image: ImageInput, boxes: np.ndarray | Sequence | None = None, batch_size: int = 32,
                nms_thr: float | None = None, color: str = "rgb") -> PosePrediction:
        """Keypoints of the persons in ``boxes`` ((N, 4) x, y, w, h, or (N, 5) with box scores) of one image.

        ``boxes=None`` takes the whole image as one person. ``image`` is a file path or an (H, W, 3)
        uint8 array in ``color`` order ('rgb', or 'bgr' as OpenCV reads). ``nms_thr`` (e.g. 0.9, as
        ``evaluate`` uses for detector boxes) drops persons that OKS-overlap a better-scoring one.
        """
        return self.predict_many([image], None if boxes is None else [boxes], batch_size, nms_thr, color)[0]

    def predict_many(self, images: Sequence[ImageInput], boxes: Sequence | None = None, batch_size: int = 32,
                     nms_thr: float | None = None, color: str = "rgb") -> list[PosePrediction]:
        """:meth:`predict` for several images, their crops batched together; ``boxes`` one entry per image."""
        if color not in ("rgb", "bgr"):
            raise ConfigError(f"color must be 'rgb' or 'bgr', not {color!r}")
        if boxes is not None and len(boxes) != len(images):
            raise DataError(f"{len(images)} images but {len(boxes)} box arrays: give one (N, 4) array per image")
        arrays: dict[str, np.ndarray] = {}
        records: list[PersonRecord] = []
        for i, image in enumerate(images):
            source, array = load_image(image, i, color)
            arrays[str(i)] = array
            for box in image_boxes(None if boxes is None else boxes[i], array.shape, source):
                records.append(PersonRecord(len(records), i, str(i), tuple(float(v) for v in box[:4]),
                                            np.zeros((0, 3), np.float32), float(box[4])))
        preds = self.predict_records(records, batch_size, read=arrays.__getitem__)
        sigmas = oks_sigmas(self.num_keypoints, self.spec.oks_sigmas) if nms_thr is not None else None
        k = self.num_keypoints
        preds_of: list[list[dict]] = [[] for _ in images]
        records_of: list[list[PersonRecord]] = [[] for _ in images]
        for p in preds:
            preds_of[p["image_id"]].append(p)
        for r in records:
            records_of[r.image_id].append(r)
        out = []
        for mine, rec in zip(preds_of, records_of):
            kpts, scores, keep = np.zeros((0, k, 3), np.float32), np.zeros(0), np.zeros(0, int)
            if mine:
                kpts = np.stack([p["keypoints"] for p in mine]).astype(np.float32)
                scores, keep = select_persons(mine, sigmas, nms_thr)
            out.append(PosePrediction(kpts[keep], scores[keep], np.array([r.bbox for r in rec]).reshape(-1, 4)[keep],
                                      np.array([r.score for r in rec])[keep], self.keypoint_names, self.skeleton))
        return out

    def predict_records(self, records: list[PersonRecord], batch_size: int = 32, num_workers: int = 0,
                        read=read_image, progress=None) -> list[dict]:
        """The raw per-record predictions of :func:`hsjp.inference.predict_records` (what ``evaluate`` scores)."""
        return predict_records(self.network, records, self.spec, self.flip_test, batch_size, num_workers, read,
                               progress)


def load_image(image: ImageInput, index: int, color: str = "rgb") -> tuple[str, np.ndarray]:
    """A path (read and checked) or an array (checked), as a contiguous RGB uint8 image and its name."""
    if isinstance(image, (str, os.PathLike)):
        return str(image), read_image(str(image))
    source = f"image {index}"
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) == 0:
        raise DataError(f"{source}: expected an (H, W, 3) uint8 image array, got shape {array.shape} "
                        f"dtype {array.dtype}")
    return source, np.ascontiguousarray(array[..., ::-1] if color == "bgr" else array)


def image_boxes(boxes, shape: tuple[int, ...], source: str) -> np.ndarray:
    """Boxes as (N, 5) x, y, w, h, score; None is the whole image. Empty boxes and boxes that miss the
    image are refused: their crops would be black and their keypoints confident-looking noise."""
    h, w = shape[:2]
    if boxes is None:
        return np.array([[0.0, 0.0, w, h, 1.0]])
    arr = np.asarray(boxes, dtype=object)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise DataError(f"{source}: boxes must be an (N, 4) array of x, y, w, h (or (N, 5) with scores), "
                        f"got shape {arr.shape}")
    out = np.ones((len(arr), 5))
    for i, row in enumerate(arr):
        values = finite_array(list(row))
        if values is None:
            raise DataError(f"{source}: box {i} {list(row)}: expected finite numbers")
        x, y, bw, bh = values[:4]
        if bw <= 0 or bh <= 0:
            raise DataError(f"{source}: box {i} [x, y, w, h] = {values[:4].tolist()} is empty "
                            "(width and height must be > 0)")
        if x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
            raise DataError(f"{source}: box {i} [x, y, w, h] = {values[:4].tolist()} lies outside the "
                            f"{w}x{h} image")
        out[i, : len(values)] = values
    return out
