"""hsjp.PoseEstimator: the same keypoints as `hsjp evaluate`, on paths or arrays, and clear box errors."""

import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from helpers import pretend_cpu_bf16
from hsjp import PoseEstimator
from hsjp.errors import CheckpointError, DataError
from hsjp.evaluate import evaluate_checkpoint


@pytest.fixture(scope="module")
def estimator(pose_checkpoint):
    return PoseEstimator.from_checkpoint(pose_checkpoint)


def test_predict_gives_evaluates_keypoints_on_the_same_boxes(tmp_path, pose_checkpoint, estimator, synthetic):
    # one crop a batch on both sides: other batch sizes change the floats by ~1e-9, which can flip a
    # keypoint whose peak is that close to a tie (batching has its own, exact test below)
    evaluate_checkpoint(str(pose_checkpoint), str(synthetic["val_ann"]), str(synthetic["val_images"]), tmp_path,
                        num_workers=0, quiet=True, batch_size=1)
    evaluated = json.loads((tmp_path / "keypoints_results.json").read_text())
    data = json.loads(synthetic["val_ann"].read_text())
    files = {im["id"]: synthetic["val_images"] / im["file_name"] for im in data["images"]}
    persons = sorted((a for a in data["annotations"] if a["num_keypoints"] and not a["iscrowd"]), key=lambda a: a["id"])
    image_ids = sorted({a["image_id"] for a in persons})
    boxes = [np.array([a["bbox"] for a in persons if a["image_id"] == i]) for i in image_ids]
    preds = estimator.predict_many([files[i] for i in image_ids], boxes, batch_size=1)
    ours = np.concatenate([p.keypoints for p in preds])
    ours_scores = np.concatenate([p.scores for p in preds])
    order = [a for i in image_ids for a in persons if a["image_id"] == i]
    theirs = np.array([r["keypoints"] for r in evaluated]).reshape(len(evaluated), -1, 3)
    by_ann = [persons.index(a) for a in order]  # evaluate writes persons in annotation-id order
    assert len(evaluated) == len(ours) > 3
    np.testing.assert_allclose(ours, theirs[by_ann], atol=1e-3)  # the results file rounds to 3 decimals
    np.testing.assert_allclose(ours_scores, np.array([r["score"] for r in evaluated])[by_ann], rtol=1e-5)


def test_path_rgb_and_bgr_arrays_agree_and_names_come_from_the_checkpoint(estimator, pose_checkpoint, synthetic):
    path = next(iter(sorted(synthetic["val_images"].glob("*.jpg"))))
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    by_path = estimator.predict(path)
    assert by_path.keypoints.shape == (1, 17, 3) and by_path.scores.shape == (1,)
    np.testing.assert_array_equal(by_path.boxes, [[0, 0, rgb.shape[1], rgb.shape[0]]])  # None: the whole image
    np.testing.assert_array_equal(estimator.predict(rgb).keypoints, by_path.keypoints)
    np.testing.assert_array_equal(estimator.predict(rgb[..., ::-1], color="bgr").keypoints, by_path.keypoints)
    # colour order matters to the network: a BGR array read as RGB gives other heatmaps
    assert not np.array_equal(estimator.predict(rgb[..., ::-1]).keypoints[..., 2], by_path.keypoints[..., 2])
    saved = torch.load(pose_checkpoint, weights_only=True, map_location="cpu")["CropDataModule"]
    data = json.loads(synthetic["train_ann"].read_text())["categories"][0]
    assert saved["keypoint_names"] == data["keypoints"]
    assert list(by_path.keypoint_names) == data["keypoints"] and [list(p) for p in by_path.skeleton] == data["skeleton"]


def test_crops_are_batched_across_images_without_changing_results(pose_checkpoint, synthetic):
    # What is under test is how predict_many batches crops of several images and hands each result back
    # to its image and box, so the network runs one crop at a time inside and the comparison is exact: a
    # convolution's floats differ between batch sizes by ~1e-9 (oneDNN on AVX-512 picks other kernels).
    estimator = PoseEstimator.from_checkpoint(pose_checkpoint)
    network = estimator.network
    estimator.network = lambda images: torch.cat([network(crop[None]) for crop in images])
    paths = sorted(synthetic["val_images"].glob("*.jpg"))[:3]
    boxes = [np.array([[10, 10, 60, 90, 0.9], [40, 20, 50, 80, 0.5]])] * 3
    one = estimator.predict_many(paths, boxes, batch_size=1)
    six = estimator.predict_many(paths, boxes, batch_size=6)
    assert len({a.keypoints.tobytes() for a in one}) == 3  # the images differ, so a mix-up would show
    for a, b in zip(one, six):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.box_scores, [0.9, 0.5])
    # OKS-NMS as evaluate applies to detector boxes: a duplicated box yields one person
    dup = estimator.predict(paths[0], np.array([[10, 10, 60, 90, 0.9]] * 2), nms_thr=0.9)
    assert len(dup) == 1


@pytest.mark.parametrize("boxes, message", [
    ([[10, 10, 0, 50]], "is empty"),
    ([[500, 10, 20, 20]], "lies outside the 160x128 image"),
    ([[-50, 10, 30, 20]], "lies outside"),
    ([[10, float("nan"), 20, 20]], "expected finite numbers"),
    ([10, 10, 20, 20], "must be an (N, 4) array"),
])
def test_bad_boxes_are_one_clear_error(estimator, synthetic, boxes, message):
    path = sorted(synthetic["val_images"].glob("*.jpg"))[0]
    with pytest.raises(DataError, match=r"box|boxes") as err:
        estimator.predict(path, boxes)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_images_and_pretext_checkpoints_are_refused(tmp_path, pose_checkpoint, estimator):
    with pytest.raises(DataError, match="expected an \\(H, W, 3\\) uint8"):
        estimator.predict(np.zeros((20, 20), np.uint8))
    with pytest.raises(DataError, match="image file not found"):
        estimator.predict(tmp_path / "missing.jpg")
    ckpt = torch.load(pose_checkpoint, weights_only=True, map_location="cpu")
    ckpt["hyper_parameters"]["cfg"]["task"] = "jigsaw"
    torch.save(ckpt, tmp_path / "pretext.ckpt")
    with pytest.raises(CheckpointError, match="pretext.ckpt: a jigsaw \\(pretext\\) checkpoint predicts puzzle pieces"):
        PoseEstimator.from_checkpoint(tmp_path / "pretext.ckpt")


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_that_emulates_it_is_warned_of(pose_checkpoint, monkeypatch, native):
    pretend_cpu_bf16(monkeypatch, native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PoseEstimator.from_checkpoint(pose_checkpoint, bf16=True)
    assert any("emulated" in str(w.message) for w in caught) == (not native)
