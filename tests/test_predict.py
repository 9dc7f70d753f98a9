"""`hsjp predict` end to end on generated images and an OpenCV-written video, its box sources and its errors."""

import json
import shutil

import cv2
import numpy as np
import pytest

from hsjp import PoseEstimator
from hsjp.cli import main


@pytest.fixture(scope="module")
def images(tmp_path_factory, synthetic):
    """Three generated images under COCO-style numeric names (their stems are their image ids)."""
    folder = tmp_path_factory.mktemp("photos")
    for i, src in enumerate(sorted(synthetic["val_images"].glob("*.jpg"))[:3]):
        shutil.copy(src, folder / f"{100 + i:012d}.jpg")
    return folder


def _predict(*args):
    return main(["predict", *map(str, args)])


def test_folder_with_whole_image_and_boxes(tmp_path, pose_checkpoint, images, capsys):
    assert _predict("--ckpt", pose_checkpoint, images, "--out", tmp_path / "whole", "--whole-image") == 0
    results = json.loads((tmp_path / "whole" / "keypoints_results.json").read_text())
    assert [r["image_id"] for r in results] == [100, 101, 102]
    assert [r["file_name"] for r in results] == sorted(p.name for p in images.iterdir())
    first = images / results[0]["file_name"]
    expected = PoseEstimator.from_checkpoint(pose_checkpoint).predict(first)
    np.testing.assert_allclose(np.reshape(results[0]["keypoints"], (17, 3)), expected.keypoints[0], atol=1e-3)
    overlay = cv2.imread(str(tmp_path / "whole" / "overlays" / f"{first.stem}.jpg"))
    assert overlay.shape == cv2.imread(str(first)).shape
    assert _changed(overlay, first) > 50  # box, skeleton and score drawn

    # detection results: by file name, by image id (the numeric stem); a duplicate box is removed by OKS-NMS
    dets = [{"file_name": "000000000100.jpg", "bbox": [10, 10, 60, 90], "score": 0.9},
            {"file_name": "000000000100.jpg", "bbox": [10, 10, 60, 90], "score": 0.8},
            {"image_id": 101, "category_id": 1, "bbox": [20, 15, 50, 80], "score": 0.7},
            {"image_id": 999, "bbox": [20, 15, 50, 80], "score": 0.7}]  # another image: ignored
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert _predict("--ckpt", pose_checkpoint, images, "--out", tmp_path / "det", "--boxes", tmp_path / "dets.json",
                    "--no-flip", "--batch-size", "2") == 0
    results = json.loads((tmp_path / "det" / "keypoints_results.json").read_text())
    assert [r["image_id"] for r in results] == [100, 101]
    assert "2 persons in 3 images" in capsys.readouterr().out
    # --min-score filters drawing only: nothing drawn, the image comes back (up to JPEG) unchanged
    assert _predict("--ckpt", pose_checkpoint, images / "000000000101.jpg", "--out", tmp_path / "none",
                    "--boxes", tmp_path / "dets.json", "--min-score", "2") == 0
    assert _changed(cv2.imread(str(tmp_path / "none" / "overlays" / "000000000101.jpg")), images / "000000000101.jpg") == 0


def _changed(overlay, original) -> int:
    """Pixels an overlay changed by more than JPEG re-encoding does."""
    return int((np.abs(overlay.astype(int) - cv2.imread(str(original)).astype(int)).max(axis=2) > 90).sum())


def test_video_gives_one_record_per_frame_and_a_readable_mp4(tmp_path, pose_checkpoint, synthetic):
    video = tmp_path / "clip.mp4"
    frames = [cv2.imread(str(p)) for p in sorted(synthetic["val_images"].glob("*.jpg"))[:5]]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (w, h))
    for f in frames:
        writer.write(cv2.resize(f, (w, h)))
    writer.release()
    assert _predict("--ckpt", pose_checkpoint, video, "--out", tmp_path / "out", "--whole-image",
                    "--batch-size", "2") == 0
    results = json.loads((tmp_path / "out" / "keypoints_results.json").read_text())
    assert [r["frame"] for r in results] == [0, 1, 2, 3, 4]
    assert {r["file_name"] for r in results} == {"clip.mp4"} and len({r["image_id"] for r in results}) == 5
    cap = cv2.VideoCapture(str(tmp_path / "out" / "overlays" / "clip.mp4"))
    read = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        read.append(frame)
    assert len(read) == 5 and read[0].shape == (h, w, 3)
    assert not list((tmp_path / "out" / "overlays").glob(".*"))  # no temporary file left


def _bad(capsys, *args) -> str:
    assert main(["predict", *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsjp: error: ") and err.count("\n") == 1, err
    return err


def test_bad_inputs_are_one_line_naming_the_file(tmp_path, pose_checkpoint, capsys):
    ckpt = ("--ckpt", pose_checkpoint, "--out", tmp_path / "out", "--whole-image")
    (tmp_path / "empty").mkdir()
    assert f"{tmp_path / 'empty'}: no images" in _bad(capsys, *ckpt, tmp_path / "empty")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    assert f"{tmp_path / 'broken.jpg'}: cannot decode image" in _bad(capsys, *ckpt, tmp_path / "broken.jpg")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    assert f"{tmp_path / 'broken.mp4'}: cannot open video" in _bad(capsys, *ckpt, tmp_path / "broken.mp4")
    (tmp_path / "notes.txt").write_text("x")
    assert "neither an image" in _bad(capsys, *ckpt, tmp_path / "notes.txt")
    (tmp_path / "dets.json").write_text(json.dumps([{"file_name": "a.jpg", "bbox": [1, 2, 0, 4], "score": 1}]))
    assert "dets.json: record 0" in _bad(capsys, "--ckpt", pose_checkpoint, "--out", tmp_path / "o", "--boxes",
                                         tmp_path / "dets.json", tmp_path / "broken.jpg")
    blocker = tmp_path / "file"  # --out below a file: the folder cannot be made
    blocker.write_text("x")
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((40, 30, 3), 128, np.uint8))
    assert f"{blocker / 'sub'}" in _bad(capsys, "--ckpt", pose_checkpoint, "--out", blocker / "sub", "--whole-image",
                                        tmp_path / "ok.png")


def test_draw_prediction_draws_each_confident_person_on_a_copy():
    from hsjp.api import PosePrediction
    from hsjp.predict import COLORS, draw_prediction

    image = np.zeros((120, 160, 3), np.uint8)
    keypoints = np.array([[[20, 30, 0.9], [40, 30, 0.9]], [[100, 80, 0.9], [120, 80, 0.9]],
                          [[70, 100, 0.9], [90, 100, 0.9]]], np.float32)
    pred = PosePrediction(keypoints, np.array([0.9, 0.8, 0.1]), np.array([[10, 10, 40, 40], [90, 60, 40, 40],
                          [60, 90, 40, 20]], np.float32), np.ones(3), ("a", "b"), ((1, 2),))
    out = draw_prediction(image, pred, min_score=0.5)
    assert not image.any(), "the input frame is left untouched"
    assert tuple(out[30, 20]) == COLORS[0] and tuple(out[80, 100]) == COLORS[1], "both confident persons, own colours"
    assert not out[100, 80].any(), "a person under min_score is not drawn"
