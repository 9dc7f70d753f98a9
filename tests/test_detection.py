"""The person detector for `hsjp predict --detector`: box conversion, local weights, offline refusal."""

import json
import urllib.error

import numpy as np
import pytest
import torch
import torchvision.models.detection as tvd

from hsjp.cli import main
from hsjp.detection import PersonDetector, person_boxes
from hsjp.errors import CheckpointError, ConfigError

SMALL = "fasterrcnn_mobilenet_v3_large_320_fpn"


def test_person_boxes_converts_xyxy_to_xywh_and_keeps_confident_persons():
    output = {"boxes": torch.tensor([[10.0, 20.0, 50.0, 100.0], [0, 0, 30, 30], [5, 5, 5.5, 40], [1, 2, 11, 22]]),
              "labels": torch.tensor([1, 3, 1, 1]),  # 3 = car
              "scores": torch.tensor([0.9, 0.99, 0.8, 0.3])}
    boxes = person_boxes(output, score_thr=0.5)
    np.testing.assert_allclose(boxes, [[10, 20, 40, 80, 0.9]], rtol=1e-6)  # car, sub-pixel box, low score dropped
    assert person_boxes(output, score_thr=0.0).shape == (2, 5)


@pytest.fixture(scope="module")
def detector_weights(tmp_path_factory):
    """A randomly initialised detector's state dict, saved as a user's downloaded file would be."""
    torch.manual_seed(0)
    model = getattr(tvd, SMALL)(weights=None, weights_backbone=None)
    with torch.no_grad():  # random weights favour one arbitrary class: make it the person (label 1)
        model.roi_heads.box_predictor.cls_score.bias[1] = 10.0
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    torch.save(model.state_dict(), path)
    return path


def test_local_weights_are_loaded_and_outputs_converted(detector_weights):
    detector = PersonDetector(SMALL, detector_weights, score_thr=0.0)
    saved = torch.load(detector_weights, weights_only=True)
    for k, v in detector.model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    (boxes,) = detector([image])
    with torch.inference_mode():
        raw = detector.model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    np.testing.assert_allclose(boxes, person_boxes(raw, 0.0), rtol=1e-5)
    assert (raw["labels"] == 1).any() and len(boxes) > 0
    assert boxes.shape[1] == 5 and (boxes[:, 2:4] >= 1).all()


def test_wrong_weights_and_no_network_are_one_line(tmp_path, detector_weights, monkeypatch, capsys):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=f"other.pth: not {SMALL} weights"):
        PersonDetector(SMALL, tmp_path / "other.pth")

    def offline(**kwargs):
        if kwargs.get("weights") is not None:
            raise urllib.error.URLError("Name or service not known")
        return original(**kwargs)

    original = getattr(tvd, SMALL)
    monkeypatch.setattr(tvd, SMALL, offline)
    with pytest.raises(ConfigError, match="could not be downloaded .*--detector-weights FILE.*--boxes.*--whole-image"):
        PersonDetector(SMALL)


def test_predict_with_detector_boxes(tmp_path, pose_checkpoint, detector_weights, synthetic):
    image = sorted(synthetic["val_images"].glob("*.jpg"))[0]
    assert main(["predict", "--ckpt", str(pose_checkpoint), str(image), "--out", str(tmp_path), "--detector",
                 "--detector-model", SMALL, "--detector-weights", str(detector_weights), "--detector-score", "0"]) == 0
    results = json.loads((tmp_path / "keypoints_results.json").read_text())
    assert results and {r["file_name"] for r in results} == {image.name}
