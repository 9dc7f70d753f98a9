"""COCO person_keypoints files, checked up front and turned into one record per person.

Everything that can be wrong with an annotation file is found here, in the main process, with the
file and record named, so that a bad file never surfaces as a traceback from a data-loader worker
or, worse, as silently wrong numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

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
            if ann.get("iscrowd", 0) or ann.get("category_id") != self.person_category_id:
                continue
            kps = np.asarray(ann.get("keypoints") or [0.0] * 3 * k, dtype=np.float32).reshape(k, 3)
            if require_keypoints and not (kps[:, 2] > 0).any():
                continue
            records.append(
                PersonRecord(ann_id, ann["image_id"], self.image_path(ann["image_id"]),
                             tuple(float(v) for v in ann["bbox"]), kps)
            )
        return records

    @property
    def person_category_id(self) -> int:
        return self.coco.dataset["_person_category_id"]


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


def _fail(path: Path, msg: str) -> DataError:
    return DataError(f"{path}: {msg}")


def _finite(values: object, n: int | None = None) -> bool:
    if not isinstance(values, (list, tuple)) or (n is not None and len(values) != n):
        return False
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def load_annotations(ann_file: str | Path, image_dir: str | Path, check_images: bool = True) -> KeypointAnnotations:
    """Read and validate a COCO person_keypoints file; every failure names the file and record."""
    path = Path(ann_file)
    if not path.is_file():
        raise _fail(path, "annotation file not found")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise _fail(path, "not a COCO annotation file (top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _fail(path, f"not a COCO annotation file (no '{key}' list)")
    cats = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        raise _fail(path, "not a COCO keypoints file: no category lists 'keypoints'")
    person = next((c for c in cats if c.get("name") == "person"), cats[0])
    names = list(person["keypoints"])
    k = len(names)
    image_ids = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not {"id", "file_name"} <= img.keys():
            raise _fail(path, f"images[{i}] lacks 'id' or 'file_name'")
        image_ids.add(img["id"])
    for i, ann in enumerate(data["annotations"]):
        rec = f"annotation id {ann.get('id', f'#{i}')}" if isinstance(ann, dict) else f"annotations[{i}]"
        if not isinstance(ann, dict) or not {"id", "image_id", "bbox", "category_id"} <= ann.keys():
            raise _fail(path, f"{rec}: needs 'id', 'image_id', 'category_id' and 'bbox'")
        if ann["image_id"] not in image_ids:
            raise _fail(path, f"{rec}: image_id {ann['image_id']} is not in 'images'")
        if ann["category_id"] != person["id"]:
            continue
        if not _finite(ann["bbox"], 4):
            raise _fail(path, f"{rec}: bbox {ann['bbox']!r} is not 4 finite numbers")
        if ann["bbox"][2] <= 0 or ann["bbox"][3] <= 0:
            raise _fail(path, f"{rec}: bbox {ann['bbox']!r} has zero or negative area")
        if "keypoints" in ann and not _finite(ann["keypoints"]):
            raise _fail(path, f"{rec}: keypoints are not a list of finite numbers")
        if "keypoints" in ann and len(ann["keypoints"]) != 3 * k:
            raise _fail(path, f"{rec}: keypoints has {len(ann['keypoints'])} values, expected {3 * k} "
                              f"({k} keypoints of category {person.get('name')!r} x 3)")
        if "keypoints" in ann and any(v < 0 for v in ann["keypoints"][2::3]):
            raise _fail(path, f"{rec}: negative keypoint visibility flag")
    data["_person_category_id"] = person["id"]
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    anns = KeypointAnnotations(path, Path(image_dir), coco, names, person.get("skeleton", []))
    if check_images:
        used = {a["image_id"] for a in data["annotations"]}
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
