"""COCO person_keypoints files, checked up front and turned into one record per person.

Files are checked by :mod:`hsjp.data.validate` when loaded, in the main process, with the file and
record named, so that a bad file never surfaces as a traceback from a data-loader worker or, worse,
as silently wrong numbers.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from hsjp.data.validate import Purpose, read_json, validate_keypoint_dataset
from hsjp.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class PersonRecord:
    """One person box in one image; ``keypoints`` is (K, 3) x, y, v with v=0 unlabelled."""

    ann_id: int
    image_id: int
    image_path: str
    bbox: tuple[float, float, float, float]  # x, y, w, h in image pixels
    keypoints: np.ndarray
    score: float = 1.0

    @property
    def num_labelled(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass
class KeypointAnnotations:
    """A validated COCO keypoint file: the pycocotools index plus what the pipeline needs."""

    path: Path
    image_dir: Path
    coco: COCO
    keypoint_names: list[str]
    skeleton: list[list[int]]
    person_category_id: int
    skipped: int = 0  # zero-area persons left out (training files only)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        return flip_pairs_from_names(self.keypoint_names)

    @property
    def upper_body_ids(self) -> list[int]:
        lower = ("hip", "knee", "ankle", "foot", "heel", "toe")
        return [i for i, n in enumerate(self.keypoint_names) if not any(w in n for w in lower)]

    def image_path(self, image_id: int) -> str:
        return str(self.image_dir / self.coco.imgs[image_id]["file_name"])

    def persons(self, require_keypoints: bool) -> list[PersonRecord]:
        """Non-crowd persons; with ``require_keypoints`` only those with a labelled keypoint.

        Finetuning and ground-truth-box evaluation need labels (the official recipes skip
        ``num_keypoints == 0``); the pretext task needs only the box.
        """
        k = self.num_keypoints
        records = []
        for ann_id in sorted(self.coco.anns):
            ann = self.coco.anns[ann_id]
            if ann["iscrowd"]:
                continue
            kps = np.asarray(ann["keypoints"], dtype=np.float32).reshape(k, 3)
            if require_keypoints and not (kps[:, 2] > 0).any():
                continue
            records.append(
                PersonRecord(ann_id, ann["image_id"], self.image_path(ann["image_id"]),
                             tuple(float(v) for v in ann["bbox"]), kps)
            )
        return records


def flip_pairs_from_names(names: list[str]) -> list[tuple[int, int]]:
    """Pairs of keypoints that swap under a horizontal flip, found by their left/right names."""
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, n in enumerate(names):
        if "left" in n:
            j = index.get(n.replace("left", "right"))
            if j is not None:
                pairs.append((i, j))
    return pairs


def coco_index(dataset: dict) -> COCO:
    """A pycocotools index over an already validated dataset, without pycocotools' printing."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_annotations(ann_file: str | Path, image_dir: str | Path, check_images: bool = True,
                     purpose: Purpose = "score") -> KeypointAnnotations:
    """Read a COCO person_keypoints file and check it against :mod:`hsjp.data.validate`'s rules.

    ``purpose='train'`` drops zero-area persons with a warning that counts them; ``'score'`` (any
    file whose AP is computed, validation sets included) refuses them.
    """
    path = Path(ann_file)
    checked = validate_keypoint_dataset(read_json(path, "annotation"), str(path), purpose)
    for reason, ids in checked.skipped.items():
        shown = ", ".join(str(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        warnings.warn(f"{path}: skipped {len(ids)} annotation(s) with a {reason} (ids {shown})", stacklevel=2)
    anns = KeypointAnnotations(path, Path(image_dir), coco_index(checked.dataset), checked.keypoint_names,
                               checked.person.get("skeleton", []), checked.person["id"],
                               sum(len(ids) for ids in checked.skipped.values()))
    if check_images:
        used = {a["image_id"] for a in checked.dataset["annotations"]}
        for image_id in sorted(used):
            p = Path(anns.image_path(image_id))
            if not p.is_file():
                raise DataError(f"{p}: image file not found (image id {image_id} of {path})")
    return anns


def folder_persons(folder: str | Path) -> list[PersonRecord]:
    """Every image of a folder as one unlabelled person box (pretraining on person images alone)."""
    from PIL import Image, UnidentifiedImageError  # header-only size read, no full decode

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    records = []
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (OSError, UnidentifiedImageError):
            raise DataError(f"{p}: cannot read image header") from None
        records.append(PersonRecord(i, i, str(p), (0.0, 0.0, float(w), float(h)), np.zeros((0, 3), np.float32)))
    return records
