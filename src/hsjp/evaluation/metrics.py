"""OKS keypoint AP/AR on COCO-format ground truth, computed by pycocotools itself.

The numbers this project reports must be the numbers the COCO leaderboard and every paper
report, so the evaluation is delegated to ``pycocotools.cocoeval.COCOeval`` rather than
re-implemented; this module has its inputs checked by :mod:`hsjp.data.validate` (so a bad file is
a one-line :class:`~hsjp.errors.DataError`, not a traceback from deep inside pycocotools nor a
silently wrong AP), picks the OKS sigmas, silences pycocotools' printing and turns
``COCOeval.stats`` into a named dict.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hsjp.data.annotations import coco_index, load_annotations
from hsjp.data.validate import person_category, read_json, validate_results
from hsjp.errors import ConfigError
from hsjp.io import atomic_write_json

__all__ = [
    "STAT_NAMES",
    "COCO_SIGMAS",
    "oks_sigmas",
    "keypoint_subset",
    "only_keypoints",
    "coco_keypoint_stats",
    "validate_results",
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
    """Keypoint names of the ground truth's person category (the one rule of hsjp.data.validate)."""
    return [str(n) for n in person_category(coco_gt.dataset.get("categories"), "ground truth")["keypoints"]]


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
    drop = [k for k in range(len(_gt_keypoint_names(coco_gt))) if k not in kept]
    dataset = copy.deepcopy(coco_gt.dataset)
    for ann in dataset.get("annotations", []):
        kps = ann.get("keypoints")
        if not kps:
            continue
        for k in drop:
            kps[3 * k: 3 * k + 3] = [0, 0, 0]
        ann["num_keypoints"] = sum(1 for v in kps[2::3] if v > 0)
    return coco_index(dataset)


def coco_keypoint_stats(coco_gt: COCO, results: list[dict], sigmas: Sequence[float] | None = None) -> dict[str, float]:
    """Run pycocotools' keypoint COCOeval and return its ten stats by name.

    ``results`` must be COCO keypoint results (see :func:`validate_results`); they are
    deep-copied because ``COCO.loadRes`` writes ``id``/``area``/``bbox`` into them. pycocotools'
    progress printing is swallowed so the terminal shows only our own summary.

    Empty ``results`` are scored as "nothing detected" (pycocotools' ``loadRes`` crashes on an
    empty list, so an empty result set is built by hand): every stat is 0, except those whose area
    range has no ground truth, which are -1 exactly as pycocotools reports them for any result set.
    """
    sig = oks_sigmas(len(_gt_keypoint_names(coco_gt)), sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        if len(results) == 0:
            coco_dt = coco_index({
                "images": list(coco_gt.dataset.get("images", [])),
                "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
                "annotations": [],
            })
        else:
            coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def load_coco_gt(ann_file: str | os.PathLike) -> COCO:
    """COCO keypoint ground truth as a pycocotools ``COCO``, checked by the scoring rules of
    :mod:`hsjp.data.validate` (so a file pycocotools would score wrongly is refused)."""
    return load_annotations(ann_file, Path(ann_file).parent, check_images=False).coco


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
    anns = load_annotations(ann_file, Path(ann_file).parent, check_images=False)
    coco_gt = anns.coco
    results = validate_results(read_json(results_file, "results"), str(results_file), anns.num_keypoints,
                               set(coco_gt.imgs), anns.person_category_id)
    extra: dict[str, Any] = {}
    if keypoints is not None:
        extra["keypoints"] = keypoint_subset(keypoints, anns.num_keypoints, anns.keypoint_names)
        coco_gt = only_keypoints(coco_gt, extra["keypoints"])
    metrics = coco_keypoint_stats(coco_gt, results, sigmas=sigmas)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "metrics.json", {**metrics, **extra})
    return metrics
