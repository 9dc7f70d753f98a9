"""The synthetic dataset is the fixture for everything downstream, so it must be genuine COCO."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from hsjp.data.synthetic import COCO_KEYPOINT_NAMES, COCO_SKELETON, generate_dataset
from hsjp.errors import ConfigError

SIZE = (256, 192)  # (width, height)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("synthetic"), n_train=24, n_val=8, seed=3)


def _load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def test_returned_paths_and_files_exist(dataset: dict[str, Path]) -> None:
    assert set(dataset) == {"train_ann", "val_ann", "train_images", "val_images", "root"}
    root = dataset["root"]
    assert dataset["train_ann"] == root / "annotations" / "person_keypoints_train.json"
    assert dataset["val_ann"] == root / "annotations" / "person_keypoints_val.json"
    assert dataset["train_images"] == root / "images" / "train"
    assert dataset["val_images"] == root / "images" / "val"
    for split, n in (("train", 24), ("val", 8)):
        data = _load(dataset[f"{split}_ann"])
        assert len(data["images"]) == n
        for img in data["images"]:
            assert (dataset[f"{split}_images"] / img["file_name"]).is_file()
    assert (dataset["train_images"] / "000000000001.jpg").is_file()


@pytest.mark.parametrize("split", ["train", "val"])
def test_pycocotools_loads(dataset: dict[str, Path], split: str) -> None:
    coco = COCO(str(dataset[f"{split}_ann"]))
    assert coco.getCatIds(catNms=["person"]) == [1]
    cat = coco.loadCats(1)[0]
    assert cat["supercategory"] == "person"
    assert cat["keypoints"] == list(COCO_KEYPOINT_NAMES)
    assert cat["skeleton"] == COCO_SKELETON
    assert len(coco.getAnnIds()) > 0


def test_constants_match_coco() -> None:
    assert len(COCO_KEYPOINT_NAMES) == 17
    assert COCO_KEYPOINT_NAMES[:3] == ("nose", "left_eye", "right_eye")
    assert COCO_KEYPOINT_NAMES[-1] == "right_ankle"
    assert len(COCO_SKELETON) == 19
    assert all(1 <= i <= 17 for pair in COCO_SKELETON for i in pair)
    assert COCO_SKELETON[0] == [16, 14] and COCO_SKELETON[-1] == [5, 7]


def test_ids_unique_across_splits(dataset: dict[str, Path]) -> None:
    train, val = _load(dataset["train_ann"]), _load(dataset["val_ann"])
    img_ids = [im["id"] for d in (train, val) for im in d["images"]]
    ann_ids = [a["id"] for d in (train, val) for a in d["annotations"]]
    assert len(set(img_ids)) == len(img_ids)
    assert len(set(ann_ids)) == len(ann_ids)
    for d in (train, val):
        known = {im["id"] for im in d["images"]}
        assert all(a["image_id"] in known for a in d["annotations"])


@pytest.mark.parametrize("split", ["train", "val"])
def test_annotations_are_consistent(dataset: dict[str, Path], split: str) -> None:
    data = _load(dataset[f"{split}_ann"])
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    assert set(sizes.values()) == {SIZE}
    for ann in data["annotations"]:
        width, height = sizes[ann["image_id"]]
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        kps = np.asarray(ann["keypoints"], dtype=float)
        assert kps.shape == (51,)
        kps = kps.reshape(17, 3)
        v = kps[:, 2]
        assert set(np.unique(v)) <= {0.0, 1.0, 2.0}
        assert ann["num_keypoints"] == int((v > 0).sum()) >= 3
        # v=0 means "not labelled": COCO convention is x=y=0.
        assert np.all(kps[v == 0, :2] == 0)
        lab = kps[v > 0, :2]
        assert np.all(lab >= 0)
        assert np.all(lab[:, 0] <= width - 1) and np.all(lab[:, 1] <= height - 1)

        x, y, w, h = ann["bbox"]
        assert all(isinstance(b, float) for b in ann["bbox"])
        assert w > 0 and h > 0
        assert x >= 0 and y >= 0 and x + w <= width + 1e-6 and y + h <= height + 1e-6
        assert np.all(lab[:, 0] >= x) and np.all(lab[:, 0] <= x + w)
        assert np.all(lab[:, 1] >= y) and np.all(lab[:, 1] <= y + h)
        assert ann["area"] == pytest.approx(0.6 * w * h, rel=1e-3)


def test_all_visibility_states_occur(dataset: dict[str, Path]) -> None:
    """Occlusion and truncation must actually happen, or v=0/v=1 code paths go untested."""
    counts = {0: 0, 1: 0, 2: 0}
    for split in ("train", "val"):
        for ann in _load(dataset[f"{split}_ann"])["annotations"]:
            for v in ann["keypoints"][2::3]:
                counts[v] += 1
    assert all(c > 0 for c in counts.values()), counts
    assert counts[2] > counts[1]  # mostly visible, as in COCO


@pytest.mark.parametrize("split", ["train", "val"])
def test_images_decode_at_declared_size(dataset: dict[str, Path], split: str) -> None:
    for im in _load(dataset[f"{split}_ann"])["images"]:
        img = cv2.imread(str(dataset[f"{split}_images"] / im["file_name"]), cv2.IMREAD_COLOR)
        assert img is not None
        assert img.shape == (im["height"], im["width"], 3)
        assert img.std() > 5  # cluttered, not blank


def test_image_size_is_width_height(tmp_path: Path) -> None:
    paths = generate_dataset(tmp_path, n_train=2, n_val=1, image_size=(160, 224), seed=1)
    data = _load(paths["train_ann"])
    assert {(im["width"], im["height"]) for im in data["images"]} == {(160, 224)}
    img = cv2.imread(str(paths["train_images"] / data["images"][0]["file_name"]))
    assert img.shape == (224, 160, 3)


def test_max_people_respected(tmp_path: Path) -> None:
    paths = generate_dataset(tmp_path, n_train=10, n_val=0, max_people=1, seed=2)
    data = _load(paths["train_ann"])
    per_image: dict[int, int] = {}
    for ann in data["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    assert max(per_image.values()) == 1
    assert _load(paths["val_ann"])["images"] == []


def test_same_seed_is_identical_different_seed_differs(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", n_train=4, n_val=2, seed=7)
    b = generate_dataset(tmp_path / "b", n_train=4, n_val=2, seed=7)
    c = generate_dataset(tmp_path / "c", n_train=4, n_val=2, seed=8)
    for key in ("train_ann", "val_ann"):
        assert a[key].read_bytes() == b[key].read_bytes()
        assert a[key].read_bytes() != c[key].read_bytes()
    name = "000000000001.jpg"
    assert (a["train_images"] / name).read_bytes() == (b["train_images"] / name).read_bytes()
    assert (a["train_images"] / name).read_bytes() != (c["train_images"] / name).read_bytes()


def test_larger_set_extends_smaller(tmp_path: Path) -> None:
    small = _load(generate_dataset(tmp_path / "s", n_train=3, n_val=1, seed=5)["train_ann"])
    big = _load(generate_dataset(tmp_path / "b", n_train=6, n_val=1, seed=5)["train_ann"])
    assert big["images"][:3] == small["images"]
    assert big["annotations"][: len(small["annotations"])] == small["annotations"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_train": -1},
        {"max_people": 0},
        {"image_size": (16, 16)},
        {"image_size": "big"},
        {"seed": -3},
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        generate_dataset(tmp_path, **kwargs)
