"""OKS AP through hsjp.evaluation.metrics must be exactly pycocotools' (and faster-coco-eval's)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hsjp.data.validate import read_json
from hsjp.errors import ConfigError, DataError
from hsjp.evaluation.metrics import (
    COCO_SIGMAS,
    STAT_NAMES,
    coco_keypoint_stats,
    format_table,
    keypoint_subset,
    load_coco_gt,
    oks_sigmas,
    only_keypoints,
    score_file,
    validate_results,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_GT = {
    "mmpose_test_coco": SHARED / "mmpose_tests" / "coco" / "test_coco.json",
    "coco_mini_val": SHARED / "coco_mini" / "annotations" / "person_keypoints_val2017.json",
}


def _real(name: str) -> Path:
    path = REAL_GT[name]
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    return path


# --------------------------------------------------------------------------- helpers


def _tiny_coco() -> dict:
    """Two images, three annotated persons (one large, one medium, one without keypoints)."""
    rng = np.random.default_rng(0)
    names = [f"k{i}" for i in range(17)]

    def person(ann_id, image_id, x0, y0, w, h, num_kpts):
        kps = []
        for k in range(17):
            if k < num_kpts:
                kps += [float(x0 + rng.uniform(0, w)), float(y0 + rng.uniform(0, h)), 2]
            else:
                kps += [0, 0, 0]
        return {
            "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [x0, y0, w, h], "area": 0.6 * w * h, "num_keypoints": num_kpts,
            "keypoints": kps, "segmentation": [],
        }

    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
            {"id": 2, "file_name": "b.jpg", "width": 640, "height": 480},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": names, "skeleton": []}],
        "annotations": [
            person(1, 1, 100, 50, 150, 300, 17),
            person(2, 2, 300, 100, 60, 110, 12),
            person(3, 2, 20, 20, 20, 30, 0),
        ],
    }


def _gt_as_results(gt: dict) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": list(a["keypoints"]), "score": 1.0}
        for a in gt["annotations"]
        if a.get("num_keypoints", 0) > 0
    ]


def _perturb(gt: dict, seed: int = 0) -> list[dict]:
    """Noisy copies of the GT poses with random scores, ~20 % dropped, plus a few false positives."""
    rng = np.random.default_rng(seed)
    out = []
    for r in _gt_as_results(gt):
        if rng.random() < 0.2:
            continue
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0.0, 4.0, size=(len(kp), 2))
        kp[:, 2] = rng.uniform(0.1, 1.0, size=len(kp))
        out.append({**r, "keypoints": kp.reshape(-1).round(3).tolist(), "score": float(rng.uniform(0.05, 1.0))})
        if rng.random() < 0.25:  # a false positive far off
            fp = kp.copy()
            fp[:, :2] += rng.uniform(30, 80)
            out.append({**r, "keypoints": fp.reshape(-1).round(3).tolist(), "score": float(rng.uniform(0.0, 0.5))})
    return out


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _pycocotools_stats(gt_file: Path, results: list[dict], sigmas=None) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, iouType="keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def _faster_stats(gt_file: Path, results: list[dict]) -> np.ndarray:
    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster

    quiet = lambda *a, **k: None  # noqa: E731
    gt = FCOCO(str(gt_file), print_function=quiet)
    dt = gt.loadRes(copy.deepcopy(results))
    ev = COCOeval_faster(gt, dt, "keypoints", print_function=quiet, kpt_oks_sigmas=list(COCO_SIGMAS))
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats[:10], dtype=np.float64)


def _as_vec(metrics: dict) -> np.ndarray:
    return np.array([metrics[n] for n in STAT_NAMES])


# --------------------------------------------------------------------------- sigmas


def test_coco_sigmas_match_pycocotools():
    from pycocotools.cocoeval import Params

    np.testing.assert_array_equal(COCO_SIGMAS, Params(iouType="keypoints").kpt_oks_sigmas)
    np.testing.assert_array_equal(oks_sigmas(17), COCO_SIGMAS)


def test_oks_sigmas_explicit_and_uniform():
    np.testing.assert_array_equal(oks_sigmas(3, [0.1, 0.2, 0.3]), [0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="2 values given, expected 3"):
        oks_sigmas(3, [0.1, 0.2])
    with pytest.raises(ConfigError):
        oks_sigmas(2, [0.1, -0.2])
    with pytest.warns(UserWarning, match="mean COCO sigma"):
        s = oks_sigmas(4099)
    np.testing.assert_allclose(s, np.full(4099, COCO_SIGMAS.mean()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        oks_sigmas(4099)  # warned once already


# --------------------------------------------------------------------------- hand-made data (no shared data)


def test_tiny_gt_as_results_is_perfect_and_matches_pycocotools(tmp_path):
    gt = _tiny_coco()
    gt_file = _write(tmp_path / "gt.json", gt)
    res_file = _write(tmp_path / "results.json", _gt_as_results(gt))
    metrics = score_file(gt_file, res_file, out_dir=tmp_path / "out")
    assert metrics["AP"] == 1.0 and metrics["AR"] == 1.0
    # one GT per area range: pycocotools' precision is 1 / (1 + eps) there
    assert metrics["APM"] == pytest.approx(1.0, abs=1e-12) and metrics["APL"] == pytest.approx(1.0, abs=1e-12)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics

    noisy = _perturb(gt, seed=0)  # both persons kept, each with a false positive
    assert len(noisy) == 4
    res_file = _write(tmp_path / "noisy.json", noisy)
    got = _as_vec(score_file(gt_file, res_file))
    np.testing.assert_allclose(got, _pycocotools_stats(gt_file, noisy), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, _faster_stats(gt_file, noisy), atol=1e-6, rtol=0)


def test_custom_sigmas_reach_cocoeval(tmp_path):
    gt = _tiny_coco()
    gt_file = _write(tmp_path / "gt.json", gt)
    rng = np.random.default_rng(1)
    res = _gt_as_results(gt)
    for r in res:
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 6, size=(17, 2))
        r["keypoints"] = kp.reshape(-1).tolist()
    res_file = _write(tmp_path / "r.json", res)
    sig = np.linspace(0.02, 0.12, 17)
    got = _as_vec(score_file(gt_file, res_file, sigmas=sig))
    np.testing.assert_allclose(got, _pycocotools_stats(gt_file, res, sigmas=sig), atol=1e-6, rtol=0)
    assert not np.allclose(got, _as_vec(score_file(gt_file, res_file)))  # the sigmas did matter


def test_empty_results_score_zero(tmp_path):
    gt_file = _write(tmp_path / "gt.json", _tiny_coco())
    metrics = score_file(gt_file, _write(tmp_path / "r.json", []))
    assert set(metrics) == set(STAT_NAMES)
    assert all(v == 0.0 for v in metrics.values())
    # and the same as faster-coco-eval, which accepts an empty result list
    np.testing.assert_allclose(_as_vec(metrics), _faster_stats(gt_file, []), atol=1e-6, rtol=0)


def test_results_are_not_mutated(tmp_path):
    gt = _tiny_coco()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(_write(tmp_path / "gt.json", gt)))
    res = _gt_as_results(gt)
    before = copy.deepcopy(res)
    coco_keypoint_stats(coco, res)
    assert res == before


def test_pycocotools_output_is_silenced(tmp_path, capsys):
    gt = _tiny_coco()
    score_file(_write(tmp_path / "gt.json", gt), _write(tmp_path / "r.json", _gt_as_results(gt)))
    assert capsys.readouterr().out == ""


def _shift(results: list[dict], keypoints: range, by: float) -> list[dict]:
    out = copy.deepcopy(results)
    for r in out:
        for k in keypoints:
            r["keypoints"][3 * k] += by
    return out


def test_keypoint_subset_scores_only_those_joints(tmp_path):
    gt = _tiny_coco()  # person 1 labels keypoints 0-16, person 2 labels 0-11
    gt_file = _write(tmp_path / "gt.json", gt)
    bad_face = _write(tmp_path / "face.json", _shift(_gt_as_results(gt), range(0, 5), 40.0))
    bad_limbs = _write(tmp_path / "limbs.json", _shift(_gt_as_results(gt), range(5, 17), 40.0))
    assert score_file(gt_file, bad_face)["AP"] < 0.9  # all 17: the wrong face costs AP
    assert score_file(gt_file, bad_face, out_dir=tmp_path / "o", keypoints="5-16")["AP"] == 1.0
    assert score_file(gt_file, bad_limbs, keypoints="5-16")["AP"] == 0.0
    written = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert written["keypoints"] == list(range(5, 17)) and written["AP"] == 1.0
    # equals pycocotools on a ground truth blanked by hand, stat for stat
    blanked = copy.deepcopy(gt)
    for a in blanked["annotations"]:
        a["keypoints"][:15] = [0] * 15
        a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])
    noisy = _perturb(gt, seed=3)
    got = _as_vec(score_file(gt_file, _write(tmp_path / "n.json", noisy), keypoints="5-16"))
    np.testing.assert_allclose(got, _pycocotools_stats(_write(tmp_path / "b.json", blanked), noisy), atol=1e-6, rtol=0)


def test_person_without_a_kept_keypoint_is_ignored(tmp_path):
    """A person labelled only outside the subset must not count as a missed detection."""
    gt = _tiny_coco()
    coco = load_coco_gt(_write(tmp_path / "gt.json", gt))
    face_only = only_keypoints(coco, [12, 13, 14, 15, 16])
    assert [a["num_keypoints"] for a in face_only.dataset["annotations"]] == [5, 0, 0]
    assert coco.dataset["annotations"][1]["num_keypoints"] == 12  # the original is untouched
    results = [r for r in _gt_as_results(gt) if r["image_id"] == 1]  # nothing for person 2
    assert coco_keypoint_stats(coco, results)["AR"] < 0.6  # all 17: person 2 counts as missed
    metrics = coco_keypoint_stats(face_only, results)  # one GT left: precision is 1 / (1 + eps)
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-12) and metrics["AR"] == 1.0


def test_keypoint_subset_parsing():
    names = [f"k{i}" for i in range(17)]
    assert keypoint_subset("5-16", 17) == list(range(5, 17))
    assert keypoint_subset(" 7, 1-2,k0,k16 ", 17, names) == [0, 1, 2, 7, 16]
    for spec, needle in (("5-17", "outside 0-16"), ("-1", "neither"), ("nose", "neither"), ("3-1", "empty range")):
        with pytest.raises(ConfigError, match=needle):
            keypoint_subset(spec, 17, names)


def test_format_table():
    metrics = dict.fromkeys(STAT_NAMES, 0.5)
    metrics.update(AP=0.71234, APM=-1.0)
    text = format_table(metrics, "coco val")
    lines = text.splitlines()
    assert lines[0] == "coco val"
    assert lines[2].split() == ["AP", "AP50", "AP75", "APM", "APL", "AR"]
    assert lines[3].split() == ["0.712", "0.500", "0.500", "-", "0.500", "0.500"]
    assert len(lines[2]) == len(lines[3])


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def tiny_gt_file(tmp_path) -> Path:
    return _write(tmp_path / "gt.json", _tiny_coco())


def _good_records() -> list[dict]:
    recs = _gt_as_results(_tiny_coco())
    return [copy.deepcopy(r) for r in recs + recs]  # four valid, independent records: 0..3


def _score_bad(tmp_path, gt_file, records, name="results.json"):
    path = _write(tmp_path / name, records)
    with pytest.raises(DataError) as exc:
        score_file(gt_file, path)
    return str(exc.value)


def test_results_not_json(tmp_path, tiny_gt_file):
    path = tmp_path / "results.json"
    path.write_text('[{"image_id": 1, ')
    with pytest.raises(DataError) as exc:
        score_file(tiny_gt_file, path)
    assert "results.json" in str(exc.value) and "not valid JSON" in str(exc.value)
    with pytest.raises(DataError, match="results.json"):
        read_json(path, "results")
    with pytest.raises(DataError, match="nothere.json: results file not found"):
        read_json(tmp_path / "nothere.json", "results")


def test_results_record_missing_keypoints(tmp_path, tiny_gt_file):
    recs = _good_records()
    del recs[3]["keypoints"]
    msg = _score_bad(tmp_path, tiny_gt_file, recs)
    assert "results.json: record 3: missing 'keypoints'" in msg


def test_results_wrong_keypoint_count(tmp_path, tiny_gt_file):
    recs = _good_records()
    recs[3]["keypoints"] = recs[3]["keypoints"][:48]
    msg = _score_bad(tmp_path, tiny_gt_file, recs)
    assert msg.endswith("results.json: record 3: keypoints has 48 values, expected 51")


def test_results_unknown_image_id(tmp_path, tiny_gt_file):
    recs = _good_records()
    recs[2]["image_id"] = 999
    msg = _score_bad(tmp_path, tiny_gt_file, recs)
    assert "results.json: record 2:" in msg and "999" in msg


def test_results_nan_score(tmp_path, tiny_gt_file):
    recs = _good_records()
    path = tmp_path / "results.json"
    path.write_text(json.dumps(recs).replace('"score": 1.0}]', '"score": NaN}]'))  # last record
    with pytest.raises(DataError) as exc:
        score_file(tiny_gt_file, path)
    assert "results.json: record 3: 'score' is nan, expected a finite number" in str(exc.value)


def test_validate_results_other_violations():
    recs = _good_records()
    ids = {1, 2}
    assert len(validate_results(recs, "r.json", 17, ids, 1)) == 4
    with pytest.raises(DataError, match=r"r.json: top level is dict, expected a list"):
        validate_results({"a": 1}, "r.json", 17, ids, 1)
    bad = copy.deepcopy(recs)
    bad[1]["keypoints"][5] = float("inf")
    with pytest.raises(DataError, match=r"r.json: record 1: 'keypoints' is .*, expected 51 finite numbers"):
        validate_results(bad, "r.json", 17, ids, 1)
    bad = copy.deepcopy(recs)
    bad[0]["score"] = True
    with pytest.raises(DataError, match="r.json: record 0: 'score' is True"):
        validate_results(bad, "r.json", 17, ids, 1)
    bad = copy.deepcopy(recs)
    bad[2] = "x"
    with pytest.raises(DataError, match="r.json: record 2"):
        validate_results(bad, "r.json", 17, ids, 1)


def test_bad_ground_truth(tmp_path):
    bad = tmp_path / "gt.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="gt.json"):
        load_coco_gt(bad)
    gt = _tiny_coco()
    del gt["annotations"][1]["area"]
    with pytest.raises(DataError, match=r"gt2.json: annotation 1 \(id 2\): 'area' is missing"):
        load_coco_gt(_write(tmp_path / "gt2.json", gt))
    with pytest.raises(DataError, match="missing.json"):
        score_file(tmp_path / "missing.json", _write(tmp_path / "r.json", []))


# --------------------------------------------------------------------------- real COCO files


@pytest.mark.parametrize("name", sorted(REAL_GT))
def test_real_gt_as_results_is_perfect(tmp_path, name):
    gt_file = _real(name)
    gt = json.loads(gt_file.read_text())
    res_file = _write(tmp_path / "results.json", _gt_as_results(gt))
    metrics = score_file(gt_file, res_file, out_dir=tmp_path)
    assert metrics["AP"] == 1.0
    assert metrics["AR"] == 1.0
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


@pytest.mark.parametrize("name", sorted(REAL_GT))
def test_real_perturbed_matches_pycocotools_and_faster_coco_eval(tmp_path, name):
    gt_file = _real(name)
    gt = json.loads(gt_file.read_text())
    results = _perturb(gt, seed=7)
    res_file = _write(tmp_path / "results.json", results)
    got = _as_vec(score_file(gt_file, res_file))
    assert 0.05 < got[0] < 0.999  # a non-trivial score, so the comparison means something
    np.testing.assert_allclose(got, _pycocotools_stats(gt_file, results), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, _faster_stats(gt_file, results), atol=1e-6, rtol=0)
    assert all(math.isfinite(v) for v in got)


def test_empty_results_keep_minus_one_for_empty_area_range(tmp_path):
    gt = _tiny_coco()
    gt["annotations"] = gt["annotations"][:1]  # one large person, no medium one
    gt_file = _write(tmp_path / "gt.json", gt)
    metrics = score_file(gt_file, _write(tmp_path / "r.json", []))
    assert metrics["APM"] == -1.0 and metrics["ARM"] == -1.0  # pycocotools' "no GT in range"
    assert metrics["AP"] == 0.0 and metrics["APL"] == 0.0
    np.testing.assert_allclose(_as_vec(metrics), _faster_stats(gt_file, []), atol=1e-6, rtol=0)
