"""OKS keypoint AP/AR on COCO-format ground truth, computed by pycocotools itself.

The numbers this project reports must be the numbers the COCO leaderboard and every paper
report, so the evaluation is delegated to ``pycocotools.cocoeval.COCOeval`` rather than
re-implemented; this module only validates inputs (so a bad file is a one-line
:class:`~hsjp.errors.DataError`, not a traceback from deep inside pycocotools), picks the OKS
sigmas, silences pycocotools' printing and turns ``COCOeval.stats`` into a named dict.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hsjp.errors import ConfigError, DataError, brief
from hsjp.io import atomic_write_json

__all__ = [
    "STAT_NAMES",
    "COCO_SIGMAS",
    "oks_sigmas",
    "keypoint_subset",
    "only_keypoints",
    "coco_keypoint_stats",
    "validate_results",
    "load_results",
    "load_coco_gt",
    "format_table",
    "score_file",
]

#: Names of ``COCOeval.stats`` for ``iouType='keypoints'``, in pycocotools' order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

#: The 17 per-keypoint OKS sigmas of COCO (nose, eyes, ears, shoulders, elbows, wrists, hips,
#: knees, ankles), exactly as in ``pycocotools.cocoeval.Params.setKpParams``. Read-only.
COCO_SIGMAS: np.ndarray = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0
COCO_SIGMAS.setflags(write=False)

_TABLE_COLUMNS = ("AP", "AP50", "AP75", "APM", "APL", "AR")
_warned_uniform: set[int] = set()


def oks_sigmas(num_keypoints: int, sigmas: Sequence[float] | None = None) -> np.ndarray:
    """Per-keypoint OKS sigmas for a skeleton of ``num_keypoints`` joints.

    Explicit ``sigmas`` win, because a dataset with its own skeleton (or a deliberate
    experiment) knows better than any default; their length must match, else the OKS would be
    silently broadcast or crash inside pycocotools. For 17 keypoints COCO's sigmas are used, so
    results are comparable with published COCO numbers. Any other count gets the mean COCO sigma
    for every joint, with a warning (once per count) since such AP is not comparable with COCO's.
    """
    if sigmas is not None:
        try:
            arr = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"OKS sigmas: not a list of numbers ({e})") from None
        if arr.shape[0] != num_keypoints:
            raise ConfigError(f"OKS sigmas: {arr.shape[0]} values given, expected {num_keypoints} (one per keypoint)")
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ConfigError("OKS sigmas: every value must be a finite number > 0")
        return arr.copy()
    if num_keypoints == len(COCO_SIGMAS):
        return COCO_SIGMAS.copy()
    if num_keypoints < 1:
        raise ConfigError(f"OKS sigmas: number of keypoints must be >= 1, got {num_keypoints}")
    if num_keypoints not in _warned_uniform:
        _warned_uniform.add(num_keypoints)
        warnings.warn(
            f"no OKS sigmas given for {num_keypoints} keypoints; using the mean COCO sigma "
            f"{COCO_SIGMAS.mean():.4f} for every keypoint (AP is not comparable with COCO's)",
            stacklevel=2,
        )
    return np.full(num_keypoints, COCO_SIGMAS.mean())


def _gt_keypoint_names(coco_gt: COCO) -> list[str]:
    """Keypoint names of the first category that lists them ([] when none does)."""
    for cat in coco_gt.dataset.get("categories", []):
        names = cat.get("keypoints") if isinstance(cat, dict) else None
        if names:
            return [str(n) for n in names]
    return []


def _gt_num_keypoints(coco_gt: COCO) -> int:
    """Keypoint count of the ground truth: from the categories' ``keypoints`` names, else from
    the first annotation, else COCO's 17."""
    names = _gt_keypoint_names(coco_gt)
    if names:
        return len(names)
    for ann in coco_gt.dataset.get("annotations", []):
        kps = ann.get("keypoints") if isinstance(ann, dict) else None
        if kps:
            return len(kps) // 3
    return len(COCO_SIGMAS)


def keypoint_subset(spec: str, num_keypoints: int, names: Sequence[str] = ()) -> list[int]:
    """Parse ``--keypoints``: comma-separated 0-based indices, ranges (``5-16``) or keypoint names.

    Indices rather than a fixed "limbs only" switch because the subset a model was trained on
    depends on its training data (LSPET labels COCO keypoints 5-16; other sets label others).
    """
    index = {n: i for i, n in enumerate(names)}
    keep: set[int] = set()
    for token in (t.strip() for t in str(spec).split(",")):
        lo, dash, hi = token.partition("-")
        try:
            if token in index:
                picked = [index[token]]
            elif dash:
                picked = list(range(int(lo), int(hi) + 1))
            else:
                picked = [int(token)]
        except ValueError:
            raise ConfigError(f"keypoint subset {spec!r}: {token!r} is neither an index, a range "
                              f"like 5-16, nor a keypoint name") from None
        if not picked:
            raise ConfigError(f"keypoint subset {spec!r}: {token!r} is an empty range")
        if min(picked) < 0 or max(picked) >= num_keypoints:
            raise ConfigError(f"keypoint subset {spec!r}: {token!r} is outside 0-{num_keypoints - 1}")
        keep.update(picked)
    return sorted(keep)


def only_keypoints(coco_gt: COCO, keep: Sequence[int]) -> COCO:
    """A copy of the ground truth in which every keypoint outside ``keep`` is unlabelled.

    The honest way to score a model on the joints it was taught: COCOeval already leaves
    unlabelled keypoints out of the OKS and ignores persons with ``num_keypoints == 0``, so
    blanking the others (and recounting ``num_keypoints``) makes pycocotools itself compute AP
    over the subset. Sigmas stay per keypoint, so each kept joint is judged exactly as in COCO.
    The number is not comparable with published COCO AP, which covers all keypoints.
    """
    kept = set(keep)
    drop = [k for k in range(_gt_num_keypoints(coco_gt)) if k not in kept]
    dataset = copy.deepcopy(coco_gt.dataset)
    for ann in dataset.get("annotations", []):
        kps = ann.get("keypoints")
        if not kps:
            continue
        for k in drop:
            kps[3 * k: 3 * k + 3] = [0, 0, 0]
        ann["num_keypoints"] = sum(1 for v in kps[2::3] if v > 0)
    out = COCO()
    out.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        out.createIndex()
    return out


def coco_keypoint_stats(coco_gt: COCO, results: list[dict], sigmas: Sequence[float] | None = None) -> dict[str, float]:
    """Run pycocotools' keypoint COCOeval and return its ten stats by name.

    ``results`` must be COCO keypoint results (see :func:`validate_results`); they are
    deep-copied because ``COCO.loadRes`` writes ``id``/``area``/``bbox`` into them. pycocotools'
    progress printing is swallowed so the terminal shows only our own summary.

    Empty ``results`` are scored as "nothing detected" (pycocotools' ``loadRes`` crashes on an
    empty list, so an empty result set is built by hand): every stat is 0, except those whose area
    range has no ground truth, which are -1 exactly as pycocotools reports them for any result set.
    """
    num_kpts = _gt_num_keypoints(coco_gt)
    sig = oks_sigmas(num_kpts, sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        if len(results) == 0:
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": list(coco_gt.dataset.get("images", [])),
                "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
                "annotations": [],
            }
            coco_dt.createIndex()
        else:
            coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_finite_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def validate_results(results: object, source: str, num_keypoints: int, known_image_ids: set[int]) -> list[dict]:
    """Check COCO keypoint results record by record and return them with plain Python types.

    pycocotools asserts or crashes with a broadcasting error far from the cause when a record is
    malformed, and silently ignores NaN scores in ways that shift AP; checking up front lets the
    user see which record of which file is wrong. Required per record: ``image_id`` (an integer
    present in the ground truth), ``category_id`` (integer), ``keypoints`` (``3*num_keypoints``
    finite numbers: x, y, score triples) and ``score`` (finite number). Other fields are kept as
    given (note that pycocotools takes a ``bbox`` field, if any, as the detection's area).
    """
    if not isinstance(results, (list, tuple)):
        raise DataError(f"{source}: expected a list of result records, got {type(results).__name__}")
    expected = 3 * num_keypoints
    out: list[dict] = []
    for i, rec in enumerate(results):
        where = f"{source}: record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in rec:
                raise DataError(f"{where}: missing '{key}'")
        image_id = rec["image_id"]
        if not _is_int(image_id):
            raise DataError(f"{where}: image_id must be an integer, got {image_id!r}")
        if int(image_id) not in known_image_ids:
            raise DataError(f"{where}: image_id {int(image_id)} is not in the ground truth")
        category_id = rec["category_id"]
        if not _is_int(category_id):
            raise DataError(f"{where}: category_id must be an integer, got {category_id!r}")
        kps = rec["keypoints"]
        if isinstance(kps, np.ndarray):
            kps = kps.reshape(-1).tolist()
        if not isinstance(kps, (list, tuple)):
            raise DataError(f"{where}: keypoints must be a list of numbers, got {type(kps).__name__}")
        if len(kps) != expected:
            raise DataError(f"{where}: keypoints has {len(kps)} values, expected {expected}")
        for j, v in enumerate(kps):
            if not _is_finite_number(v):
                raise DataError(f"{where}: keypoints[{j}] is {v!r}, expected a finite number")
        score = rec["score"]
        if not _is_finite_number(score):
            raise DataError(f"{where}: score is {score!r}, expected a finite number")
        clean = dict(rec)
        clean["image_id"] = int(image_id)
        clean["category_id"] = int(category_id)
        clean["keypoints"] = [float(v) for v in kps]
        clean["score"] = float(score)
        out.append(clean)
    return out


def _read_json(path: Path, what: str) -> Any:
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


def load_results(path: str | os.PathLike) -> list:
    """Read a COCO results JSON file; any read or parse failure is a DataError naming the file."""
    path = Path(path)
    data = _read_json(path, "results")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of result records, got {type(data).__name__}")
    return data


def _check_gt(dataset: object, source: str) -> None:
    """The fields COCOeval('keypoints') reads from ground truth, checked so that a broken file
    fails with its name and record instead of a KeyError inside pycocotools."""
    if not isinstance(dataset, dict):
        raise DataError(f"{source}: expected a COCO annotation object, got {type(dataset).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise DataError(f"{source}: missing or non-list '{key}'")
    for i, img in enumerate(dataset["images"]):
        if not isinstance(img, dict) or not _is_int(img.get("id")):
            raise DataError(f"{source}: image {i}: missing integer 'id'")
    for i, cat in enumerate(dataset["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise DataError(f"{source}: category {i}: missing integer 'id'")
    num_kpts = None
    for cat in dataset["categories"]:
        if cat.get("keypoints"):
            num_kpts = len(cat["keypoints"])
            break
    for i, ann in enumerate(dataset["annotations"]):
        where = f"{source}: annotation {i}"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: expected an object")
        for key in ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox"):
            if key not in ann:
                raise DataError(f"{where}: missing '{key}'")
        kps = ann["keypoints"]
        if not isinstance(kps, list) or len(kps) % 3 != 0:
            raise DataError(f"{where}: keypoints must be a list of x, y, v triples")
        if num_kpts is None:
            num_kpts = len(kps) // 3
        if len(kps) != 3 * num_kpts:
            raise DataError(f"{where}: keypoints has {len(kps)} values, expected {3 * num_kpts}")
        bbox = ann["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(f"{where}: bbox must be [x, y, w, h]")


def load_coco_gt(ann_file: str | os.PathLike) -> COCO:
    """Load COCO keypoint ground truth into a pycocotools ``COCO`` object (quietly).

    Equivalent to ``COCO(ann_file)`` but every failure — missing file, bad JSON, missing fields
    COCOeval needs — is a DataError naming the file.
    """
    path = Path(ann_file)
    dataset = _read_json(path, "annotation")
    _check_gt(dataset, str(path))
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco.createIndex()
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not a usable COCO annotation file ({brief(e)})") from None
    return coco


def format_table(metrics: dict[str, float], title: str) -> str:
    """A small aligned table (AP AP50 AP75 APM APL AR) for the terminal.

    Values print with 3 decimals as in pycocotools' own summary; a missing stat or pycocotools'
    -1 ("no ground truth in this area range") prints as ``-`` so it cannot be misread as a score.
    """
    cells = []
    for name in _TABLE_COLUMNS:
        v = metrics.get(name)
        if v is None or not math.isfinite(float(v)) or float(v) < 0:
            cells.append("-")
        else:
            cells.append(f"{float(v):.3f}")
    width = max(5, *(len(c) for c in cells))
    header = "  ".join(name.rjust(width) for name in _TABLE_COLUMNS)
    row = "  ".join(c.rjust(width) for c in cells)
    rule = "-" * len(header)
    return "\n".join([title, rule, header, row])


def score_file(
    ann_file: str | os.PathLike,
    results_file: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    sigmas: Sequence[float] | None = None,
    keypoints: str | None = None,
) -> dict[str, float]:
    """Score a COCO keypoint results file against a COCO annotation file (``hsjp score``).

    Validates everything first so any problem is one DataError naming the file and record, then
    computes the stats with pycocotools and, when ``out_dir`` is given, writes
    ``out_dir/metrics.json`` atomically so an interrupted run never leaves half a metrics file.
    ``keypoints`` (see :func:`keypoint_subset`) scores only those joints; the file then records
    which, so a subset AP is never mistaken for a full one.
    """
    coco_gt = load_coco_gt(ann_file)
    num_kpts = _gt_num_keypoints(coco_gt)
    raw = load_results(results_file)
    results = validate_results(raw, str(results_file), num_kpts, set(coco_gt.getImgIds()))
    extra: dict[str, Any] = {}
    if keypoints is not None:
        extra["keypoints"] = keypoint_subset(keypoints, num_kpts, _gt_keypoint_names(coco_gt))
        coco_gt = only_keypoints(coco_gt, extra["keypoints"])
    metrics = coco_keypoint_stats(coco_gt, results, sigmas=sigmas)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "metrics.json", {**metrics, **extra})
    return metrics
