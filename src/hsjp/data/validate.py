"""The one rule set for every file a user hands to hsjp: annotations, results, detections, images.

Training, pretraining, ``evaluate``, ``score`` and detection boxes all read through here, so a file
is judged the same way whichever command reads it, and every refusal is one
:class:`~hsjp.errors.DataError` line in one style: the file, the record (index and id), the field,
what was expected. pycocotools checks almost nothing: a NaN box, a zero area, a ``num_keypoints``
that disagrees with the keypoints or results of another category are scored without a word, so
what it would get silently wrong is refused here first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from hsjp.errors import DataError

Purpose = Literal["train", "score"]

_REAL = (int, float, np.integer, np.floating)
_PLAIN = {int, float}
_JPEG_SOI, _JPEG_SOS, _JPEG_EOI = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def read_json(path: str | os.PathLike, what: str) -> Any:
    """Parse a JSON file; a missing, unreadable or non-JSON file is a DataError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read {what} file ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None


def finite_array(values: object, length: int | None = None) -> np.ndarray | None:
    """``values`` as float64 when it is a list of real, finite numbers (of ``length``), else None.

    The single finiteness test: JSON readers accept ``NaN`` and ``Infinity``, booleans pass as
    integers, and numpy would happily turn ``"3"`` into 3.0, so each is excluded explicitly.
    """
    if isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    if not isinstance(values, (list, tuple)) or (length is not None and len(values) != length):
        return None
    if not set(map(type, values)) <= _PLAIN and not all(isinstance(v, _REAL) and not isinstance(v, bool)
                                                        for v in values):  # the set: a fast path for JSON
        return None
    arr = np.asarray(values, dtype=np.float64)
    return arr if np.isfinite(arr).all() else None


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(kind: str, index: int, rec: object) -> str:
    rec_id = rec.get("id") if isinstance(rec, dict) else None
    return f"{kind} {index}" + (f" (id {_show(rec_id)})" if rec_id is not None else "")


def _bad(source: str, where: str, name: str, rec: dict, expected: str) -> DataError:
    got = f"is {_show(rec[name])}" if name in rec else "is missing"
    return DataError(f"{source}: {where}: '{name}' {got}, expected {expected}")


def person_category(categories: object, source: str) -> dict:
    """The category whose keypoints the file annotates: the only one listing ``keypoints``, or
    among several, the only one named ``person``. Anything else is ambiguous and refused."""
    if not isinstance(categories, list):
        raise DataError(f"{source}: 'categories' is missing or not a list")
    cands = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    if not cands:
        raise DataError(f"{source}: no category lists 'keypoints': not a COCO person_keypoints file")
    if len(cands) > 1:
        named = [c for c in cands if c.get("name") == "person"]
        if len(named) != 1:
            ids = ", ".join(_show(c.get("id")) for c in cands)
            raise DataError(f"{source}: several categories list 'keypoints' (ids {ids}) and not exactly one "
                            "is named 'person': cannot tell which is the person category")
        cands = named
    return cands[0]


@dataclass
class CheckedDataset:
    """A keypoint file that passed :func:`validate_keypoint_dataset`.

    ``dataset`` is the input minus the annotations skipped for training (listed by reason in
    ``skipped``); ``person`` is its person category.
    """

    dataset: dict
    person: dict
    skipped: dict[str, list] = field(default_factory=dict)

    @property
    def keypoint_names(self) -> list[str]:
        return list(self.person["keypoints"])


def _objects_with_ids(records: list, kind: str, source: str) -> Iterator[tuple[str, dict]]:
    """Each record with its name for messages, once it is known to be an object with a unique integer id
    (pycocotools' index would silently keep only the last of two records with one id)."""
    seen: dict[int, int] = {}
    for i, rec in enumerate(records):
        where = _where(kind, i, rec)
        if not isinstance(rec, dict):
            raise DataError(f"{source}: {where}: is {type(rec).__name__}, expected an object")
        if not _is_int(rec.get("id")):
            raise _bad(source, where, "id", rec, "an integer")
        if rec["id"] in seen:
            raise DataError(f"{source}: {where}: id {rec['id']} is also {kind} {seen[rec['id']]}'s, expected unique ids")
        seen[rec["id"]] = i
        yield where, rec


def _check_categories(categories: list, source: str) -> dict:
    for _ in _objects_with_ids(categories, "category", source):
        pass
    person = person_category(categories, source)
    where = f"category {categories.index(person)} (id {person['id']})"
    names = person["keypoints"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _bad(source, where, "keypoints", person, "a list of keypoint names")
    if len(set(names)) != len(names):
        raise _bad(source, where, "keypoints", person, "distinct keypoint names")
    skeleton = person.get("skeleton", [])
    k = len(names)
    if not isinstance(skeleton, list) or not all(
            isinstance(e, list) and len(e) == 2 and all(_is_int(j) and 1 <= j <= k for j in e) for e in skeleton):
        raise _bad(source, where, "skeleton", person, f"a list of [a, b] pairs of 1-based keypoint numbers 1-{k}")
    return person


def _check_images(images: list, source: str) -> set[int]:
    for where, img in _objects_with_ids(images, "image", source):
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise _bad(source, where, "file_name", img, "a file name")
    return {img["id"] for img in images}


def _check_annotation(ann: dict, where: str, source: str, person_id: int, k: int,
                      image_ids: set[int]) -> bool:
    """Raise on anything wrong with one annotation; return False for a zero-area one (the caller decides)."""
    for name in ("image_id", "category_id", "num_keypoints"):
        if not _is_int(ann.get(name)) or (name == "num_keypoints" and ann[name] < 0):
            raise _bad(source, where, name, ann, "an integer" + (" >= 0" if name == "num_keypoints" else ""))
    if ann["image_id"] not in image_ids:
        raise DataError(f"{source}: {where}: image_id {ann['image_id']} is not in 'images'")
    if ann["category_id"] != person_id:
        raise DataError(f"{source}: {where}: category_id {ann['category_id']} is not the person category "
                        f"{person_id}, expected only person annotations")
    if ann.get("iscrowd") not in (0, 1) or isinstance(ann.get("iscrowd"), float):
        raise _bad(source, where, "iscrowd", ann, "0 or 1")
    bbox = finite_array(ann.get("bbox"), 4)
    if bbox is None or bbox[2] < 0 or bbox[3] < 0:
        raise _bad(source, where, "bbox", ann, "[x, y, w, h]: 4 finite numbers, w and h >= 0")
    area = finite_array([ann.get("area")])
    if area is None or area[0] < 0:
        raise _bad(source, where, "area", ann, "a finite number >= 0")
    kps = finite_array(ann.get("keypoints"))
    if kps is None:
        raise _bad(source, where, "keypoints", ann, f"a list of {3 * k} finite numbers")
    if len(kps) != 3 * k:
        raise DataError(f"{source}: {where}: keypoints has {len(kps)} values, expected {3 * k} "
                        f"({k} keypoints x 3)")
    flags = kps[2::3]
    odd = np.flatnonzero((flags != 0) & (flags != 1) & (flags != 2))
    if odd.size:
        raise DataError(f"{source}: {where}: keypoint {odd[0]} has visibility flag {flags[odd[0]]:g}, "
                        "expected 0 (unlabelled), 1 (hidden) or 2 (visible)")
    labelled = int((flags > 0).sum())
    if ann["num_keypoints"] != labelled:
        raise DataError(f"{source}: {where}: num_keypoints is {ann['num_keypoints']} but {labelled} keypoints "
                        "are labelled (v > 0), expected them to agree")
    return bbox[2] > 0 and bbox[3] > 0 and area[0] > 0


def validate_keypoint_dataset(data: object, source: str, purpose: Purpose) -> CheckedDataset:
    """Check a parsed COCO person_keypoints file against the one rule set.

    Everything is an error except a zero-area person (zero box width or height, or zero ``area``):
    for ``purpose='train'`` it is dropped and counted in ``skipped`` (one bad box should not cost a
    training run); for ``'score'`` it is an error, because OKS divides by the area and pycocotools
    would score it silently.
    """
    if not isinstance(data, dict):
        raise DataError(f"{source}: top level is {type(data).__name__}, expected a COCO object with "
                        "'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: '{key}' is {'missing' if key not in data else 'not a list'}, "
                            f"expected a list: not a COCO annotation file")
    person = _check_categories(data["categories"], source)
    image_ids = _check_images(data["images"], source)
    k = len(person["keypoints"])
    kept, zero_area = [], []
    for where, ann in _objects_with_ids(data["annotations"], "annotation", source):
        if _check_annotation(ann, where, source, person["id"], k, image_ids):
            kept.append(ann)
        elif purpose == "score":
            raise DataError(f"{source}: {where}: zero-area person (bbox {_show(ann['bbox'])}, area "
                            f"{_show(ann['area'])}), expected box width, height and area > 0 in a file to be scored")
        else:
            zero_area.append(ann["id"])
    if not zero_area:
        return CheckedDataset(data, person)
    return CheckedDataset({**data, "annotations": kept}, person, {"zero-area box": zero_area})


def validate_results(results: object, source: str, num_keypoints: int, known_image_ids: set[int],
                     category_id: int) -> list[dict]:
    """Check COCO keypoint results record by record; return them with plain Python types.

    Required: ``image_id`` of the ground truth, ``category_id`` of its person category (pycocotools
    matches by category, so any other scores 0 without a word), ``keypoints`` (``3*num_keypoints``
    finite numbers) and a finite ``score``. A ``bbox``, if records carry one, becomes the
    detection's area in pycocotools, so it must be finite and on every record or on none.
    """
    if not isinstance(results, (list, tuple)):
        raise DataError(f"{source}: top level is {type(results).__name__}, expected a list of result records")
    expected = 3 * num_keypoints
    with_bbox = bool(results) and isinstance(results[0], dict) and "bbox" in results[0]
    out: list[dict] = []
    for i, rec in enumerate(results):
        where = f"record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{source}: {where}: is {type(rec).__name__}, expected an object")
        _check_image_and_category(rec, source, where, known_image_ids, category_id, required=True)
        if "keypoints" not in rec:
            raise DataError(f"{source}: {where}: missing 'keypoints'")
        kps = finite_array(rec["keypoints"])
        if kps is None:
            raise _bad(source, where, "keypoints", rec, f"{expected} finite numbers")
        if len(kps) != expected:
            raise DataError(f"{source}: {where}: keypoints has {len(kps)} values, expected {expected}")
        score = _check_score(rec, source, where)
        if ("bbox" in rec) != with_bbox:
            raise DataError(f"{source}: {where}: {'has' if 'bbox' in rec else 'lacks'} a 'bbox' unlike record 0, "
                            "expected every record or none to have one")
        clean = {**rec, "image_id": int(rec["image_id"]), "category_id": int(rec["category_id"]),
                 "keypoints": kps.tolist(), "score": score}
        if with_bbox:
            clean["bbox"] = _check_box(rec, source, where, allow_zero=True)
        out.append(clean)
    return out


def validate_detections(dets: object, source: str, known_image_ids: set[int], category_id: int) -> list[dict]:
    """Check a COCO detection-results file (person boxes with scores) record by record.

    ``category_id`` may be absent (a person-only detector); when given it must be the person
    category: silently dropping the boxes of another id would evaluate on fewer persons than asked.
    """
    if not isinstance(dets, list):
        raise DataError(f"{source}: top level is {type(dets).__name__}, expected a list of detected boxes")
    out = []
    for i, d in enumerate(dets):
        where = f"record {i}"
        if not isinstance(d, dict):
            raise DataError(f"{source}: {where}: is {type(d).__name__}, expected an object")
        _check_image_and_category(d, source, where, known_image_ids, category_id, required=False)
        out.append({"image_id": int(d["image_id"]), "bbox": _check_box(d, source, where, allow_zero=False),
                    "score": _check_score(d, source, where)})
    return out


def _check_image_and_category(rec: dict, source: str, where: str, image_ids: set[int], category_id: int,
                              required: bool) -> None:
    if not _is_int(rec.get("image_id")):
        raise _bad(source, where, "image_id", rec, "an integer")
    if int(rec["image_id"]) not in image_ids:
        raise DataError(f"{source}: {where}: image_id {int(rec['image_id'])} is not in the ground truth")
    if required or "category_id" in rec:
        if not _is_int(rec.get("category_id")):
            raise _bad(source, where, "category_id", rec, "an integer")
        if rec["category_id"] != category_id:
            raise DataError(f"{source}: {where}: category_id {rec['category_id']} is not the person category "
                            f"{category_id} of the ground truth")


def _check_score(rec: dict, source: str, where: str) -> float:
    score = finite_array([rec.get("score")])
    if score is None:
        raise _bad(source, where, "score", rec, "a finite number")
    return float(score[0])


def _check_box(rec: dict, source: str, where: str, allow_zero: bool) -> list[float]:
    box = finite_array(rec.get("bbox"), 4)
    if box is None or box[2] < 0 or box[3] < 0:
        raise _bad(source, where, "bbox", rec, "[x, y, w, h]: 4 finite numbers, w and h >= 0")
    if not allow_zero and (box[2] == 0 or box[3] == 0):
        raise _bad(source, where, "bbox", rec, "a box of non-zero area")
    return box.tolist()


def _jpeg_truncated(path: str) -> bool:
    """Whether a JPEG file stops before its end-of-image marker.

    libjpeg decodes a truncated file without error, greying out what is missing, so the file has
    to be checked. The cheap test reads the last bytes (every JPEG of ../shared/data ends in the
    marker); only when it fails is the whole file searched, because some writers pad the end or
    append data (a motion photo's video) after the image: the marker must then follow the first
    scan.
    """
    with open(path, "rb") as f:
        if f.read(2) != _JPEG_SOI:
            return False  # not a JPEG: the decoder judges it
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64))
        if f.read().rstrip(b"\0\r\n\t ").endswith(_JPEG_EOI):
            return False
        f.seek(0)
        data = f.read()
    pos, sos = 2, -1
    while pos + 4 <= len(data) and data[pos] == 0xFF:  # walk the headers (APPn with thumbnails) to the first scan
        if data[pos: pos + 2] == _JPEG_SOS:
            sos = pos
            break
        pos += 2 + int.from_bytes(data[pos + 2: pos + 4], "big")
    if sos < 0:  # headers not walkable (fill bytes, damage): fall back to the first scan marker anywhere
        sos = data.find(_JPEG_SOS)
    return sos < 0 or data.find(_JPEG_EOI, sos) < 0


def read_image(path: str) -> np.ndarray:
    """RGB uint8 image; a missing, undecodable or truncated file is a DataError naming it.

    Training skips such an image with a warning (see ``PersonCrops``); everywhere else it is an error.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: image file not found")
    try:
        truncated = _jpeg_truncated(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read image file ({e.strerror or e})") from None
    if truncated:
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker): the file is incomplete")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot decode image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
