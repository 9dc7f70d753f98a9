"""Person crops: image file + person box -> augmented, warped crop + a training target.

The same dataset serves finetuning (target: keypoint heatmaps), the HSJP pretext (target: puzzle
heatmaps) and inference (no augmentation). What differs is the ``target`` callable, so the
geometry, augmentation and image handling exist once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from hsjp.config import AugmentConfig, DataConfig
from hsjp.data.annotations import PersonRecord
from hsjp.data.geometry import (
    BORDERS,
    affine_matrix,
    box_to_center_scale,
    flip_keypoints,
    invert_affine,
    transform_points,
    warp,
)
from hsjp.data.targets import Target
from hsjp.data.validate import read_image
from hsjp.errors import ConfigError, DataError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """HWC uint8 RGB -> normalised CHW float32 (ImageNet statistics, as timm backbones expect)."""
    return torch.from_numpy(((crop.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy())


def from_tensor(image: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_tensor`, for pictures."""
    arr = image.detach().float().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(arr, 0, 255).astype(np.uint8)


@dataclass
class CropGeometry:
    input_size: tuple[int, int]  # w, h
    padding: float = 1.25
    border: str = "constant"  # see hsjp.data.geometry.BORDERS

    @classmethod
    def from_config(cls, data: DataConfig) -> CropGeometry:
        if data.border not in BORDERS:
            raise ConfigError(f"data.border must be one of {', '.join(BORDERS)}, not {data.border!r}")
        return cls(tuple(data.input_size), data.box_padding, data.border)

    @property
    def aspect_ratio(self) -> float:
        return self.input_size[0] / self.input_size[1]


class PersonCrops(Dataset):
    """One sample per person record.

    ``deterministic`` draws each sample's randomness from its index (held-out puzzles stay the same
    every epoch); otherwise from torch's RNG, which Lightning seeds per run and per worker.
    """

    def __init__(self, records: list[PersonRecord], geometry: CropGeometry, target: Target,
                 augment: AugmentConfig | None = None, flip_pairs: list[tuple[int, int]] | None = None,
                 upper_body_ids: list[int] | None = None, deterministic: bool = False, seed: int = 0,
                 read: Callable[[str], np.ndarray] = read_image):
        self.records = records
        self.read = read  # record.image_path -> RGB image; in-memory images (API, video frames) swap it
        self.geometry = geometry
        self.target = target
        self.augment = augment if augment is not None and augment.enabled else None
        self.flip_pairs = flip_pairs or []
        self.upper_body_ids = set(upper_body_ids or [])
        self.deterministic = deterministic
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self, index: int) -> np.random.Generator:
        if self.deterministic:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        try:
            image = self.read(rec.image_path)
        except DataError as e:
            return {"skipped": str(e)}
        rng = self._rng(index)
        center, scale = box_to_center_scale(rec.bbox, self.geometry.aspect_ratio, self.geometry.padding)
        keypoints = rec.keypoints.copy()
        rotation, flip = 0.0, False
        if self.augment is not None:
            center, scale = self._half_body(keypoints, center, scale, rng)
            a = self.augment
            scale = scale * float(np.clip(rng.normal() * a.scale_factor + 1, 1 - a.scale_factor, 1 + a.scale_factor))
            if rng.random() < a.rotation_prob:
                rotation = float(np.clip(rng.normal() * a.rotation, -2 * a.rotation, 2 * a.rotation))
            flip = a.flip and rng.random() < 0.5
        matrix = affine_matrix(center, scale, rotation, self.geometry.input_size)
        crop = warp(image, matrix, self.geometry.input_size, self.geometry.border)
        if len(keypoints):
            keypoints[:, :2] = transform_points(keypoints[:, :2], matrix)
        if flip:
            crop = crop[:, ::-1]
            if len(keypoints):  # unlabelled sources (an image folder) have none
                keypoints = flip_keypoints(keypoints, self.geometry.input_size[0], self.flip_pairs)
        sample = self.target(np.ascontiguousarray(crop), keypoints, rng)
        sample["image"] = to_tensor(sample["image"])
        sample["meta"] = {
            "ann_id": rec.ann_id,
            "image_id": rec.image_id,
            "score": np.float32(rec.score),
            "bbox": np.asarray(rec.bbox, dtype=np.float32),
            "crop_to_image": invert_affine(matrix),
            "area": np.float32(scale[0] * scale[1]),
        }
        return sample

    def _half_body(self, keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """With probability p, re-centre the crop on the labelled upper or lower body (official recipe)."""
        a = self.augment
        labelled = np.flatnonzero(keypoints[:, 2] > 0) if len(keypoints) else np.array([], int)
        if len(labelled) <= a.half_body_min_keypoints or rng.random() >= a.half_body_prob:
            return center, scale
        upper = [i for i in labelled if i in self.upper_body_ids]
        lower = [i for i in labelled if i not in self.upper_body_ids]
        chosen = upper if (rng.random() < 0.5 and len(upper) > 2) else lower
        if len(chosen) <= 2:
            chosen = upper if len(upper) > 2 else chosen
        if len(chosen) <= 2:
            return center, scale
        pts = keypoints[chosen, :2]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        c, s = box_to_center_scale((lo[0], lo[1], max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)),
                                   self.geometry.aspect_ratio, padding=1.5)
        return c, s


def collate_skipping(batch: list[dict]) -> dict:
    """Collate the samples that loaded; list the reasons of those that did not under ``skipped``."""
    good = [b for b in batch if "skipped" not in b]
    out = default_collate(good) if good else {}
    out["skipped"] = [b["skipped"] for b in batch if "skipped" in b]
    return out
