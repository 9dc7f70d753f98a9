"""The one rule set: every kind of bad input is one DataError line naming file, record and field."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from helpers import shared_path
from hsjp.data.annotations import load_annotations
from hsjp.data.validate import finite_array, person_category, read_image
from hsjp.errors import DataError
from hsjp.evaluation.metrics import score_file
from hsjp.evaluation.topdown import detection_records

NAN = float("nan")


def _coco() -> dict:
    """Two images, three keypoints; annotation 1 (id 7) is the one the cases break."""
    return {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"],
                        "skeleton": [[2, 3]]}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 20, 40], "area": 500.0,
             "num_keypoints": 3, "keypoints": [5, 5, 2, 8, 6, 1, 3, 6, 2]},
            {"id": 7, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [1, 2, 30, 60], "area": 1200,
             "num_keypoints": 2, "keypoints": [5, 5, 2, 8, 6, 2, 0, 0, 0]},
            {"id": 9, "image_id": 2, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 50, 50], "area": 900,
             "num_keypoints": 0, "keypoints": [0] * 9},
        ],
    }


def _ann(d: dict) -> dict:
    return d["annotations"][1]


def _drop(key):
    return lambda d: _ann(d).pop(key)


def _set(key, value):
    return lambda d: _ann(d).update({key: value})


def _other_keypoint_category(name):
    return lambda d: d["categories"].append({"id": 2, "name": name, "keypoints": ["a", "b", "c"]})


REC = "annotation 1 (id 7): "
ANNOTATION_CASES = [
    pytest.param(lambda d: d.clear() or d.update(x=1), "'images' is missing, expected a list", id="no images"),
    pytest.param(lambda d: d.pop("annotations"), "'annotations' is missing", id="no annotations"),
    pytest.param(lambda d: d.pop("categories"), "'categories' is missing", id="no categories"),
    pytest.param(lambda d: d["categories"][0].pop("keypoints"), "no category lists 'keypoints'", id="no person"),
    pytest.param(_other_keypoint_category("person"), "several categories list 'keypoints' (ids 1, 2)",
                 id="two persons"),
    pytest.param(lambda d: d["categories"][0].update(name="human") or _other_keypoint_category("animal")(d),
                 "not exactly one is named 'person'", id="two candidates"),
    pytest.param(lambda d: d["categories"][0].update(keypoints=["nose", "nose", "eye"]),
                 "category 0 (id 1): 'keypoints' is ['nose', 'nose', 'eye'], expected distinct", id="name twice"),
    pytest.param(lambda d: d["categories"][0].update(keypoints=["nose", 3, "eye"]),
                 "expected a list of keypoint names", id="name not str"),
    pytest.param(lambda d: d["categories"][0].update(skeleton=[[1, 4]]),
                 "'skeleton' is [[1, 4]], expected a list of [a, b] pairs of 1-based keypoint numbers 1-3",
                 id="skeleton"),
    pytest.param(lambda d: d["categories"].append({"id": 1, "name": "x"}), "category 1 (id 1): id 1 is also "
                 "category 0's", id="duplicate category id"),
    pytest.param(lambda d: d["images"][1].update(id=1), "image 1 (id 1): id 1 is also image 0's",
                 id="duplicate image id"),
    pytest.param(lambda d: d["images"][1].pop("file_name"), "image 1 (id 2): 'file_name' is missing",
                 id="image file_name"),
    *[pytest.param(_drop(k), f"{REC}'{k}' is missing, expected", id=f"missing {k}")
      for k in ("image_id", "category_id", "bbox", "area", "iscrowd", "num_keypoints", "keypoints")],
    pytest.param(_drop("id"), "annotation 1: 'id' is missing, expected an integer", id="missing id"),
    pytest.param(_set("id", "7"), "annotation 1 (id '7'): 'id' is '7', expected an integer", id="mistyped id"),
    pytest.param(_set("image_id", 2.0), f"{REC}'image_id' is 2.0, expected an integer", id="mistyped image_id"),
    pytest.param(_set("category_id", True), f"{REC}'category_id' is True, expected an integer",
                 id="mistyped category_id"),
    pytest.param(_set("bbox", "1,2,3,4"), f"{REC}'bbox' is '1,2,3,4', expected [x, y, w, h]", id="mistyped bbox"),
    pytest.param(_set("bbox", [1, 2, 3]), f"{REC}'bbox' is [1, 2, 3], expected [x, y, w, h]", id="short bbox"),
    pytest.param(_set("area", "big"), f"{REC}'area' is 'big', expected a finite number", id="mistyped area"),
    pytest.param(_set("iscrowd", 2), f"{REC}'iscrowd' is 2, expected 0 or 1", id="mistyped iscrowd"),
    pytest.param(_set("num_keypoints", "many"), f"{REC}'num_keypoints' is 'many', expected an integer",
                 id="num_keypoints many"),
    pytest.param(_set("keypoints", "lots"), f"{REC}'keypoints' is 'lots', expected a list of 9 finite numbers",
                 id="mistyped keypoints"),
    pytest.param(_set("bbox", [1, NAN, 30, 60]), f"{REC}'bbox' is [1, nan, 30, 60], expected", id="nan box"),
    pytest.param(_set("bbox", [1, 2, math.inf, 60]), f"{REC}'bbox' is [1, 2, inf, 60]", id="inf box"),
    pytest.param(_set("bbox", [1, 2, -30, 60]), "4 finite numbers, w and h >= 0", id="negative box"),
    pytest.param(_set("area", NAN), f"{REC}'area' is nan, expected a finite number >= 0", id="nan area"),
    pytest.param(_set("area", -5), f"{REC}'area' is -5, expected a finite number >= 0", id="negative area"),
    pytest.param(lambda d: _ann(d)["keypoints"].__setitem__(3, NAN), f"{REC}'keypoints' is [5, 5, 2, nan,",
                 id="nan keypoint"),
    pytest.param(_set("keypoints", [5, 5, 2, 8, 6, 2]), f"{REC}keypoints has 6 values, expected 9 (3 keypoints x 3)",
                 id="keypoint count"),
    pytest.param(_set("keypoints", [5, 5, 2, 8, 6, 3, 0, 0, 0]), f"{REC}keypoint 1 has visibility flag 3, expected 0",
                 id="visibility 3"),
    pytest.param(_set("keypoints", [5, 5, 2, 8, 6, 0.5, 0, 0, 0]), "keypoint 1 has visibility flag 0.5",
                 id="visibility fraction"),
    pytest.param(_set("num_keypoints", 3), f"{REC}num_keypoints is 3 but 2 keypoints are labelled (v > 0)",
                 id="num_keypoints disagrees"),
    pytest.param(_set("image_id", 3), f"{REC}image_id 3 is not in 'images'", id="unknown image"),
    pytest.param(_set("category_id", 2), f"{REC}category_id 2 is not the person category 1", id="other category"),
    pytest.param(_set("id", 1), "annotation 1 (id 1): id 1 is also annotation 0's, expected unique ids",
                 id="duplicate annotation id"),
]


def _write(tmp_path, obj, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj))  # NaN and Infinity go out as the literals other tools write too
    return path


def _one_line(err: pytest.ExceptionInfo, path) -> str:
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    return text


def test_the_reference_file_is_valid(tmp_path):
    for purpose in ("train", "score"):
        anns = load_annotations(_write(tmp_path, _coco()), tmp_path, check_images=False, purpose=purpose)
        assert anns.num_keypoints == 3 and anns.skipped == 0 and len(anns.coco.anns) == 3


@pytest.mark.parametrize("purpose", ["train", "score"])
@pytest.mark.parametrize("mutate, message", ANNOTATION_CASES)
def test_bad_annotation_file(tmp_path, mutate, message, purpose):
    data = _coco()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as err:
        load_annotations(path, tmp_path, check_images=False, purpose=purpose)
    assert message in _one_line(err, path)


@pytest.mark.parametrize("mutate", [_set("bbox", [1, 2, 0, 60]), _set("bbox", [1, 2, 30, 0]), _set("area", 0)],
                         ids=["zero width", "zero height", "zero area"])
def test_zero_area_person_is_skipped_for_training_and_refused_for_scoring(tmp_path, mutate):
    data = _coco()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.warns(UserWarning, match=r"ann.json: skipped 1 annotation\(s\) with a zero-area box \(ids 7\)"):
        anns = load_annotations(path, tmp_path, check_images=False, purpose="train")
    assert anns.skipped == 1 and sorted(anns.coco.anns) == [1, 9]
    with pytest.raises(DataError) as err:
        load_annotations(path, tmp_path, check_images=False, purpose="score")
    assert f"{REC}zero-area person (bbox [" in _one_line(err, path) and "expected box width, height and area > 0" in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("{oops", "not valid JSON (line 1 column 2"),
    ("[1, 2]", "top level is list, expected a COCO object"),
    ("\xff", "not valid JSON"),
], ids=["not json", "not an object", "not text"])
def test_unreadable_annotation_file(tmp_path, text, message):
    path = tmp_path / "ann.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as err:
        load_annotations(path, tmp_path)
    assert message in _one_line(err, path) or "cannot read annotation file" in str(err.value)
    with pytest.raises(DataError, match="nope.json: annotation file not found"):
        load_annotations(tmp_path / "nope.json", tmp_path)


def test_person_category_rule():
    person = {"id": 1, "name": "person", "keypoints": ["a"]}
    assert person_category([{"id": 5, "name": "car"}, person], "f") is person  # only one lists keypoints
    hand = {"id": 2, "name": "hand", "keypoints": ["b"]}
    assert person_category([hand, person], "f") is person  # several: the one named person
    assert person_category([hand], "f") is hand  # one keypoint category is the person, whatever its name


def test_finite_array_refuses_what_json_and_numpy_let_through():
    assert finite_array([1, 2.5, np.float32(3)], 3).tolist() == [1.0, 2.5, 3.0]
    for bad in ([1, NAN], [1, math.inf], [True, 1], ["3", 1], [None], "12", {"a": 1}, None):
        assert finite_array(bad) is None, bad
    assert finite_array([1, 2], 3) is None


# --------------------------------------------------------------------------- results and detections


def _results() -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": 0.9}
            for a in _coco()["annotations"][:2]]


def _rec(key, value):
    return lambda r: r[1].update({key: value})


RESULT_CASES = [
    pytest.param(_rec("category_id", 2), "record 1: category_id 2 is not the person category 1", id="other category"),
    pytest.param(_rec("image_id", 99), "record 1: image_id 99 is not in the ground truth", id="unknown image"),
    pytest.param(_rec("image_id", "2"), "record 1: 'image_id' is '2', expected an integer", id="mistyped image_id"),
    pytest.param(_rec("score", NAN), "record 1: 'score' is nan, expected a finite number", id="nan score"),
    pytest.param(lambda r: r[1].pop("score"), "record 1: 'score' is missing", id="missing score"),
    pytest.param(lambda r: r[1]["keypoints"].__setitem__(0, NAN), "record 1: 'keypoints' is [nan, 5,",
                 id="nan keypoint"),
    pytest.param(lambda r: r[1].update(keypoints=r[1]["keypoints"][:6]), "record 1: keypoints has 6 values, "
                 "expected 9", id="keypoint count"),
    pytest.param(lambda r: r.__setitem__(1, [1, 2]), "record 1: is list, expected an object", id="not an object"),
    pytest.param(lambda r: r[0].update(bbox=[0, 0, 9, 9]), "record 1: lacks a 'bbox' unlike record 0", id="some bbox"),
    pytest.param(lambda r: [x.update(bbox=[0, 0, 9, NAN]) for x in r], "record 0: 'bbox' is [0, 0, 9, nan]",
                 id="nan bbox"),
]


@pytest.mark.parametrize("mutate, message", RESULT_CASES)
def test_bad_results_file(tmp_path, mutate, message):
    results = _results()
    mutate(results)
    path = _write(tmp_path, results, "results.json")
    with pytest.raises(DataError) as err:
        score_file(_write(tmp_path, _coco()), path)
    assert message in _one_line(err, path)


def test_results_of_the_reference_are_perfect(tmp_path):
    assert score_file(_write(tmp_path, _coco()), _write(tmp_path, _results(), "r.json"), sigmas=[0.05] * 3)["AP"] == 1.0


def _dets() -> list[dict]:
    return [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 40], "score": 0.8},
            {"image_id": 2, "category_id": 1, "bbox": [1, 2, 30, 60], "score": 0.05}]


DETECTION_CASES = [
    pytest.param(_rec("category_id", 3), "record 1: category_id 3 is not the person category 1", id="other category"),
    pytest.param(_rec("image_id", 99), "record 1: image_id 99 is not in the ground truth", id="unknown image"),
    pytest.param(_rec("score", NAN), "record 1: 'score' is nan, expected a finite number", id="nan score"),
    pytest.param(_rec("score", "high"), "record 1: 'score' is 'high'", id="mistyped score"),
    pytest.param(_rec("bbox", [1, NAN, 30, 60]), "record 1: 'bbox' is [1, nan, 30, 60]", id="nan bbox"),
    pytest.param(_rec("bbox", [1, 2, 30, -6]), "w and h >= 0", id="negative bbox"),
    pytest.param(_rec("bbox", [1, 2, 0, 60]), "record 1: 'bbox' is [1, 2, 0, 60], expected a box of non-zero area",
                 id="zero-area bbox"),
    pytest.param(lambda r: r[1].pop("bbox"), "record 1: 'bbox' is missing", id="missing bbox"),
    pytest.param(lambda r: r.clear() or r.append("x"), "record 0: is str, expected an object", id="not an object"),
]


@pytest.mark.parametrize("mutate, message", DETECTION_CASES)
def test_bad_detection_file(tmp_path, mutate, message):
    anns = load_annotations(_write(tmp_path, _coco()), tmp_path, check_images=False)
    dets = _dets()
    mutate(dets)
    path = _write(tmp_path, dets, "dets.json")
    with pytest.raises(DataError) as err:
        detection_records(path, anns, score_thr=0.1)  # a NaN score must not pass (or fail) the threshold silently
    assert message in _one_line(err, path)


def test_detections_are_thresholded_and_category_may_be_absent(tmp_path):
    anns = load_annotations(_write(tmp_path, _coco()), tmp_path, check_images=False)
    dets = _dets()
    del dets[0]["category_id"]
    records = detection_records(_write(tmp_path, dets, "dets.json"), anns, score_thr=0.1)
    assert [(r.image_id, r.bbox, r.score) for r in records] == [(1, (0.0, 0.0, 20.0, 40.0), 0.8)]
    with pytest.raises(DataError, match="dets.json: top level is dict, expected a list of detected boxes"):
        detection_records(_write(tmp_path, {"a": 1}, "dets.json"), anns)
    with pytest.raises(DataError, match="nope.json: detection file not found"):
        detection_records(tmp_path / "nope.json", anns)


# --------------------------------------------------------------------------- images


@pytest.fixture
def jpeg_bytes() -> bytes:
    image = cv2.GaussianBlur((np.random.default_rng(0).random((120, 90, 3)) * 255).astype(np.uint8), (9, 9), 3)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok and buf.tobytes().endswith(b"\xff\xd9")
    return buf.tobytes()


def _with_thumbnail(jpeg: bytes) -> bytes:
    """The JPEG with a complete JPEG thumbnail in an APP1 segment, as cameras write them."""
    thumb = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()
    payload = b"Exif\0\0" + thumb
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) * 6 // 10], "truncated JPEG"),
    (lambda b: b[:-2], "truncated JPEG"),  # only the end marker is missing
    (lambda b: _with_thumbnail(b)[:-300], "truncated JPEG"),  # the thumbnail's end marker must not count
    (lambda b: b"not an image", "cannot decode image"),
    (lambda b: b[:2], "truncated JPEG"),
], ids=["cut", "no end marker", "cut with thumbnail", "garbage", "header only"])
def test_damaged_image_is_refused(tmp_path, jpeg_bytes, damage, message):
    path = tmp_path / "x.jpg"
    path.write_bytes(damage(jpeg_bytes))
    with pytest.raises(DataError) as err:
        read_image(str(path))
    assert message in _one_line(err, path)


@pytest.mark.parametrize("keep", [
    lambda b: b + b"\0" * 100,  # zero padding after the end marker
    lambda b: b + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4,  # a motion photo's video appended
    _with_thumbnail,
], ids=["padded", "appended data", "thumbnail"])
def test_complete_jpeg_with_extras_is_read(tmp_path, jpeg_bytes, keep):
    path = tmp_path / "x.jpg"
    path.write_bytes(keep(jpeg_bytes))
    assert read_image(str(path)).shape == (120, 90, 3)


def test_truncated_png_and_missing_image(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))[1].tobytes()[:-20])
    with pytest.raises(DataError, match="x.png: cannot decode image"):
        read_image(str(path))
    with pytest.raises(DataError, match="nope.jpg: image file not found"):
        read_image(str(tmp_path / "nope.jpg"))


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize("parts", [
    ("coco_mini", "annotations", "person_keypoints_train2017.json"),
    ("coco_mini", "annotations", "person_keypoints_val2017.json"),
    ("lspet", "annotations", "person_keypoints_lspet_val.json"),
    ("mmpose_tests", "coco", "test_coco.json"),
    ("mmpose_tests", "ochuman", "test_ochuman.json"),
], ids=lambda p: p[-1])
def test_real_files_pass_both_rule_sets(parts):
    """Crowd regions, keypoint-less persons and LSPET's area = 0.53 x box are all valid COCO."""
    path = shared_path(*parts)
    data = json.loads(path.read_text())
    for purpose in ("train", "score"):
        anns = load_annotations(path, path.parent, check_images=False, purpose=purpose)
        assert anns.skipped == 0 and len(anns.coco.anns) == len(data["annotations"])


def test_real_detection_file_and_images_pass():
    root = shared_path("mmpose_tests", "coco")
    anns = load_annotations(root / "test_coco.json", root)
    records = detection_records(root / "test_coco_det_AP_H_56.json", anns)
    assert len(records) == len(json.loads((root / "test_coco_det_AP_H_56.json").read_text()))
    for image_id in anns.coco.imgs:
        assert read_image(anns.image_path(image_id)).ndim == 3
