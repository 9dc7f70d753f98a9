"""The command line end to end: finetune, evaluate, score, show-puzzle, and its one-line errors."""

import errno
import json
import os
import shutil
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from helpers import run_process, shared_path
from hsjp.cli import main
from hsjp.evaluation.metrics import score_file


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_overrides):
    out = tmp_path_factory.mktemp("finetune")
    assert main(["finetune", "--config", "cpu_r18_128x96", "--out", str(out), "--devices", "1",
                 "--precision", "bf16-mixed", *tiny_overrides, "train.epochs=1", "train.limit_train_batches=2"]) == 0
    saved = (out / "config.yaml").read_text()
    assert "precision: bf16-mixed" in saved  # the flag wins over the config file
    return out / "checkpoints" / "last.ckpt"


def _run(*args):
    """The CLI in a subprocess, as a user runs it: exit code and stderr."""
    proc = run_process([sys.executable, "-m", "hsjp.cli", *args])
    return proc.returncode, proc.stderr


def test_evaluate_writes_results_and_metrics(tmp_path, checkpoint, synthetic, capsys):
    assert main(["evaluate", "--ckpt", str(checkpoint), "--ann", str(synthetic["val_ann"]),
                 "--images", str(synthetic["val_images"]), "--out", str(tmp_path), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "ground-truth boxes" in printed and "AP50" in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"AP", "AP50", "AP75", "APM", "APL", "AR", "PCK@0.1"} <= metrics.keys()
    results = json.loads((tmp_path / "keypoints_results.json").read_text())
    n_persons = sum(1 for a in json.loads(synthetic["val_ann"].read_text())["annotations"] if a["num_keypoints"])
    assert len(results) == n_persons and len(results[0]["keypoints"]) == 51
    # the metrics are pycocotools' own for the written results
    gt = COCO(str(synthetic["val_ann"]))
    ev = COCOeval(gt, gt.loadRes(str(tmp_path / "keypoints_results.json")), "keypoints")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert metrics["AP"] == pytest.approx(ev.stats[0], abs=1e-9)
    picture = cv2.imread(str(tmp_path / "predictions.png"))
    assert picture is not None and min(picture.shape[:2]) > 100
    # a subset is scored by the same pycocotools path as `hsjp score --keypoints` on the written results
    assert main(["evaluate", "--ckpt", str(checkpoint), "--ann", str(synthetic["val_ann"]), "--images",
                 str(synthetic["val_images"]), "--out", str(tmp_path / "sub"), "--workers", "0", "--show", "0",
                 "--keypoints", "left_shoulder,5-16"]) == 0
    sub = json.loads((tmp_path / "sub" / "metrics.json").read_text())
    assert sub["keypoints"] == list(range(5, 17)) and "keypoints left_shoulder,5-16 only" in capsys.readouterr().out
    rescored = score_file(synthetic["val_ann"], tmp_path / "sub" / "keypoints_results.json", keypoints="5-16")
    assert sub["AP"] == pytest.approx(rescored["AP"], abs=1e-9)


def test_evaluate_on_detector_boxes(tmp_path, checkpoint):
    root = shared_path("mmpose_tests", "coco")
    assert main(["evaluate", "--ckpt", str(checkpoint), "--ann", str(root / "test_coco.json"), "--images", str(root),
                 "--boxes", str(root / "test_coco_det_AP_H_56.json"), "--out", str(tmp_path), "--workers", "0"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "detector boxes" in metrics["boxes"] and "PCK@0.1" not in metrics
    dets = json.loads((root / "test_coco_det_AP_H_56.json").read_text())
    results = json.loads((tmp_path / "keypoints_results.json").read_text())
    assert 0 < len(results) <= len(dets)


def test_score_ground_truth_as_results_is_perfect(tmp_path, capsys):
    ann = shared_path("coco_mini", "annotations", "person_keypoints_val2017.json")
    data = json.loads(ann.read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    (tmp_path / "r.json").write_text(json.dumps(results))
    assert main(["score", "--ann", str(ann), "--results", str(tmp_path / "r.json"), "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["AP"] == 1.0 and metrics["AR"] == 1.0
    assert "AP75" in capsys.readouterr().out
    assert main(["score", "--ann", str(ann), "--results", str(tmp_path / "r.json"), "--keypoints", "5-16"]) == 0
    assert "keypoints 5-16 only" in capsys.readouterr().out
    code, err = _run("score", "--ann", str(ann), "--results", str(tmp_path / "r.json"), "--keypoints", "5-20")
    assert code != 0 and "outside 0-16" in err and len(err.strip().splitlines()) == 1


def test_show_puzzle_png(tmp_path, synthetic, tiny_overrides):
    out = tmp_path / "puzzle.png"
    assert main(["show-puzzle", "--config", "hsjp_cpu_r18_128x96", "--out", str(out), "--n", "2",
                 *tiny_overrides, "jigsaw.grid=[2,2]"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_get_one_line_errors(tmp_path, checkpoint, synthetic):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, err = _run("score", "--ann", str(synthetic["val_ann"]), "--results", str(broken))
    assert code == 2 and err.strip().count("\n") == 0 and "broken.json" in err and "Traceback" not in err

    ann = json.loads(synthetic["val_ann"].read_text())
    ann["annotations"][0]["keypoints"] = ann["annotations"][0]["keypoints"][:-3]
    short = tmp_path / "short.json"
    short.write_text(json.dumps(ann))
    code, err = _run("evaluate", "--ckpt", str(checkpoint), "--ann", str(short), "--images",
                     str(synthetic["val_images"]), "--out", str(tmp_path / "e"))
    assert code == 2 and f"annotation 0 (id {ann['annotations'][0]['id']}): keypoints has 48 values, expected 51" in err
    assert err.strip().count("\n") == 0


def test_checkpoint_of_another_architecture_is_refused(tmp_path, checkpoint, synthetic, tiny_overrides):
    code, err = _run("finetune", "--config", "cpu_r18_128x96", "--out", str(tmp_path), *tiny_overrides,
                     "model.arch=resnet34", f"model.init={checkpoint}")
    assert code == 2 and "refusing weights that do not fit backbone resnet34" in err and "missing" in err
    assert err.strip().count("\n") == 0


def test_pretext_checkpoint_is_not_a_pose_checkpoint(tmp_path, synthetic, tiny_overrides, capsys):
    out = tmp_path / "pre"
    assert main(["pretrain", "--config", "hsjp_cpu_r18_128x96", "--out", str(out), *tiny_overrides,
                 "jigsaw.grid=[2,2]", "train.epochs=1", "train.limit_train_batches=1"]) == 0
    code, err = _run("evaluate", "--ckpt", str(out / "checkpoints" / "last.ckpt"), "--ann", str(synthetic["val_ann"]),
                     "--images", str(synthetic["val_images"]), "--out", str(tmp_path / "e"))
    assert code == 2 and "a jigsaw (pretext) checkpoint predicts puzzle pieces, not keypoints" in err
    # its backbone, though, initialises a pose network fully
    finetune = tmp_path / "ft"
    assert main(["finetune", "--config", "cpu_r18_128x96", "--out", str(finetune), *tiny_overrides,
                 "train.epochs=1", "train.limit_train_batches=1", "--init", str(out / "network.safetensors")]) == 0
    assert "filled 75/75 backbone tensors (100.0%)" in capsys.readouterr().out
    assert np.isfinite(json.loads((finetune / "metrics.json").read_text())["AP"])


# --------------------------------------------------------------------------- bad input: one line, exit 2


def _broken_copy(src, tmp_path, breaks, name="ann.json"):
    """``src`` (a COCO file) with its first annotation broken by ``breaks``."""
    data = json.loads(src.read_text())
    breaks(data["annotations"][0])
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path, data["annotations"][0]["id"]


def _one_error_line(capsys, *needles) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("hsjp: error: ") and "\n" not in err and "Traceback" not in err, err
    assert all(n in err for n in needles), err
    return err


NAN = float("nan")
GROUND_TRUTH_BREAKS = {
    "no iscrowd": lambda a: a.pop("iscrowd"),
    "no area": lambda a: a.pop("area"),
    "no num_keypoints": lambda a: a.pop("num_keypoints"),
    "nan box": lambda a: a["bbox"].__setitem__(1, NAN),
    "nan keypoint": lambda a: a["keypoints"].__setitem__(0, NAN),
    "num_keypoints many": lambda a: a.update(num_keypoints="many"),
    "zero-area box": lambda a: a["bbox"].__setitem__(2, 0),
}


@pytest.mark.parametrize("kind", sorted(GROUND_TRUTH_BREAKS))
def test_score_refuses_bad_ground_truth(tmp_path, synthetic, capsys, kind):
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in json.loads(synthetic["val_ann"].read_text())["annotations"]]
    (tmp_path / "r.json").write_text(json.dumps(results))
    ann, ann_id = _broken_copy(synthetic["val_ann"], tmp_path, GROUND_TRUTH_BREAKS[kind])
    assert main(["score", "--ann", str(ann), "--results", str(tmp_path / "r.json"), "--out", str(tmp_path / "o")]) == 2
    _one_error_line(capsys, f"{ann}: annotation 0 (id {ann_id}): ")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["no iscrowd", "no area", "no num_keypoints", "nan box", "num_keypoints many"])
def test_evaluate_and_finetune_refuse_bad_ground_truth(tmp_path, checkpoint, synthetic, tiny_overrides, capsys, kind):
    ann, ann_id = _broken_copy(synthetic["val_ann"], tmp_path, GROUND_TRUTH_BREAKS[kind])
    assert main(["evaluate", "--ckpt", str(checkpoint), "--ann", str(ann), "--images", str(synthetic["val_images"]),
                 "--out", str(tmp_path / "e"), "--workers", "0"]) == 2
    _one_error_line(capsys, f"{ann}: annotation 0 (id {ann_id}): ")
    train_ann, ann_id = _broken_copy(synthetic["train_ann"], tmp_path, GROUND_TRUTH_BREAKS[kind], "train.json")
    for split, path in (("train", train_ann), ("val", ann)):  # refused before the first epoch, not at validation
        assert main(["finetune", "--config", "cpu_r18_128x96", "--out", str(tmp_path / f"ft-{split}"), *tiny_overrides,
                     f"data.{split}_ann={path}"]) == 2
        _one_error_line(capsys, f"{path}: annotation 0 (id ")
        assert not (tmp_path / f"ft-{split}" / "checkpoints").exists()


RESULTS_BREAKS = {
    "other category": (lambda r: r.update(category_id=2), "category_id 2 is not the person category 1"),
    "unknown image": (lambda r: r.update(image_id=123456), "image_id 123456 is not in the ground truth"),
    "nan score": (lambda r: r.update(score=NAN), "'score' is nan"),
    "nan keypoint": (lambda r: r["keypoints"].__setitem__(4, NAN), "'keypoints' is"),
    "keypoint count": (lambda r: r.update(keypoints=r["keypoints"][:48]), "keypoints has 48 values, expected 51"),
}


@pytest.mark.parametrize("kind", sorted(RESULTS_BREAKS))
def test_score_refuses_bad_results(tmp_path, synthetic, capsys, kind):
    breaks, message = RESULTS_BREAKS[kind]
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in json.loads(synthetic["val_ann"].read_text())["annotations"]]
    breaks(results[2])
    (tmp_path / "r.json").write_text(json.dumps(results))
    assert main(["score", "--ann", str(synthetic["val_ann"]), "--results", str(tmp_path / "r.json")]) == 2
    _one_error_line(capsys, f"{tmp_path / 'r.json'}: record 2: {message}")


def test_evaluate_refuses_bad_detections(tmp_path, checkpoint, capsys):
    root = shared_path("mmpose_tests", "coco")
    dets = json.loads((root / "test_coco_det_AP_H_56.json").read_text())
    dets[5]["score"] = NAN  # would pass (or miss) the score threshold without a word
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert main(["evaluate", "--ckpt", str(checkpoint), "--ann", str(root / "test_coco.json"), "--images", str(root),
                 "--boxes", str(tmp_path / "dets.json"), "--out", str(tmp_path / "e"), "--workers", "0"]) == 2
    _one_error_line(capsys, f"{tmp_path / 'dets.json'}: record 5: 'score' is nan")


def test_evaluate_refuses_truncated_image(tmp_path, checkpoint, synthetic, capsys):
    images = tmp_path / "images"
    shutil.copytree(synthetic["val_images"], images)
    victim = sorted(images.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-500])  # decodes "fine" in OpenCV, grey where data is missing
    assert main(["evaluate", "--ckpt", str(checkpoint), "--ann", str(synthetic["val_ann"]), "--images", str(images),
                 "--out", str(tmp_path / "e"), "--workers", "0"]) == 2
    _one_error_line(capsys, f"{victim}: truncated JPEG")


def test_failed_write_is_one_line_and_leaves_no_partial_file(tmp_path, synthetic, capsys, monkeypatch):
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in json.loads(synthetic["val_ann"].read_text())["annotations"]]
    (tmp_path / "r.json").write_text(json.dumps(results))
    score = ["score", "--ann", str(synthetic["val_ann"]), "--results", str(tmp_path / "r.json"), "--out"]
    (tmp_path / "file").write_text("in the way")
    assert main([*score, str(tmp_path / "file" / "out")]) == 2  # --out cannot be created
    _one_error_line(capsys, f"{tmp_path / 'file' / 'out' / 'metrics.json'}: cannot create folder")

    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("old")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("hsjp.io.os.fsync", disk_full)
    assert main([*score, str(out)]) == 2
    _one_error_line(capsys, f"{out / 'metrics.json'}: cannot write (No space left on device)")
    assert os.listdir(out) == ["metrics.json"] and (out / "metrics.json").read_text() == "old"
