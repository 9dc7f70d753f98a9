import json
import shutil

import numpy as np
import pytest

from helpers import shared_path
from hsjp.data.annotations import load_annotations
from hsjp.errors import DataError


def _write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture
def coco_dict(synthetic):
    return json.loads(synthetic["train_ann"].read_text())


def test_real_mmpose_fixture_loads():
    root = shared_path("mmpose_tests", "coco")
    anns = load_annotations(root / "test_coco.json", root)
    assert anns.num_keypoints == 17
    persons = anns.persons(require_keypoints=True)
    assert len(persons) == 12  # README: 12 annotated persons in 4 images
    assert all(p.keypoints.shape == (17, 3) and p.num_labelled > 0 for p in persons)
    assert len(anns.persons(require_keypoints=False)) >= len(persons)


def test_keypoint_count_comes_from_the_category(tmp_path, coco_dict, synthetic):
    cat = coco_dict["categories"][0]
    cat["keypoints"] = cat["keypoints"][:5]
    cat["skeleton"] = [e for e in cat["skeleton"] if max(e) <= 5]
    for a in coco_dict["annotations"]:
        a["keypoints"] = a["keypoints"][:15]
        a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])
    anns = load_annotations(_write(tmp_path, coco_dict), synthetic["train_images"])
    assert anns.num_keypoints == 5
    assert anns.persons(True)[0].keypoints.shape == (5, 3)


def test_not_json_and_missing_file(tmp_path, synthetic):
    with pytest.raises(DataError, match="not valid JSON"):
        load_annotations(_write(tmp_path, "{oops"), synthetic["train_images"])
    with pytest.raises(DataError, match="annotation file not found"):
        load_annotations(tmp_path / "nope.json", synthetic["train_images"])


def test_missing_image_is_named_with_its_id(tmp_path, coco_dict, synthetic):
    images = tmp_path / "images"
    shutil.copytree(synthetic["train_images"], images)
    victim = coco_dict["images"][0]
    (images / victim["file_name"]).unlink()
    with pytest.raises(DataError) as err:
        load_annotations(_write(tmp_path, coco_dict), images)
    assert victim["file_name"] in str(err.value) and f"image id {victim['id']}" in str(err.value)


def test_crowd_and_unlabelled_persons_are_not_training_samples(tmp_path, coco_dict, synthetic):
    coco_dict["annotations"][0]["iscrowd"] = 1
    coco_dict["annotations"][1].update(keypoints=[0.0] * 51, num_keypoints=0)
    anns = load_annotations(_write(tmp_path, coco_dict), synthetic["train_images"])
    ids = {p.ann_id for p in anns.persons(require_keypoints=True)}
    assert coco_dict["annotations"][0]["id"] not in ids and coco_dict["annotations"][1]["id"] not in ids
    unlabelled = {p.ann_id for p in anns.persons(require_keypoints=False)}
    assert coco_dict["annotations"][1]["id"] in unlabelled
    assert np.all(anns.persons(False)[0].keypoints.shape == (17, 3))


def test_zero_area_person_is_skipped_with_a_count_for_training_only(tmp_path, coco_dict, synthetic):
    """One degenerate box should not cost a training run, but must never be scored."""
    victims = coco_dict["annotations"][1], coco_dict["annotations"][4]
    victims[0]["bbox"][2] = 0
    victims[1]["area"] = 0
    path = _write(tmp_path, coco_dict)
    with pytest.warns(UserWarning, match=r"skipped 2 annotation\(s\) with a zero-area box \(ids 2, 5\)"):
        anns = load_annotations(path, synthetic["train_images"], purpose="train")
    assert anns.skipped == 2
    ids = {p.ann_id for p in anns.persons(require_keypoints=False)}
    assert ids and not ids & {v["id"] for v in victims}
    with pytest.raises(DataError, match=r"annotation 1 \(id 2\): zero-area person \(bbox \[[^]]*, 0[,\]]"):
        load_annotations(path, synthetic["train_images"])  # purpose='score' by default
