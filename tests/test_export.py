"""`hsjp export`: ONNX Runtime gives PyTorch's heatmaps and keypoints; safetensors loads without Lightning."""

import json
import sys

import numpy as np
import pytest
import torch

import hsjp.inference
from helpers import peak_margins, run_process
from hsjp import PoseEstimator
from hsjp.cli import main
from hsjp.data.crops import IMAGENET_MEAN
from hsjp.errors import CheckpointError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, pose_checkpoint):
    out = tmp_path_factory.mktemp("export")
    for fmt in ("onnx", "safetensors"):
        assert main(["export", "--ckpt", str(pose_checkpoint), "--format", fmt, "--out", str(out / f"pose.{fmt}")]) == 0
    return out


def test_onnx_heatmaps_and_keypoints_match_pytorch(exported, pose_checkpoint, synthetic, monkeypatch):
    eager = PoseEstimator.from_checkpoint(pose_checkpoint)
    meta = {p.key: p.value for p in onnx.load(str(exported / "pose.onnx")).metadata_props}
    assert json.loads(meta["hsjp.input_size"]) == [64, 64]
    assert json.loads(meta["hsjp.keypoint_names"])[5] == "left_shoulder"
    assert json.loads(meta["hsjp.flip_pairs"]) == [list(p) for p in eager.spec.flip_pairs] != []
    assert json.loads(meta["hsjp.mean"]) == pytest.approx(IMAGENET_MEAN.tolist())
    session = ort.InferenceSession(str(exported / "pose.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch axis is dynamic
        crops = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
        theirs = session.run(None, {"input": crops.numpy()})[0]
        ours = eager.network(crops).numpy()
        assert theirs.shape == ours.shape == (batch, 17, 16, 16)
        assert np.abs(theirs - ours).max() <= 1e-4
        assert np.abs(ours).max() > 1e-3  # a trained head, not all-zero maps
    via_onnx = PoseEstimator.from_checkpoint(exported / "pose.onnx")
    assert via_onnx.spec == eager.spec
    paths = sorted(synthetic["val_images"].glob("*.jpg"))[:4]
    boxes = [np.array([[5, 5, 100, 110], [30, 20, 60, 90]])] * len(paths)
    maps = []  # the flip-tested heatmaps each backend decodes
    monkeypatch.setattr(hsjp.inference, "predict_heatmaps",
                        lambda *args, real=hsjp.inference.predict_heatmaps: maps.append(real(*args)) or maps[-1])
    a = np.concatenate([p.keypoints for p in eager.predict_many(paths, boxes)])
    b = np.concatenate([p.keypoints for p in via_onnx.predict_many(paths, boxes)])
    # exact keypoints are only owed where the peaks stand clear of the backends' difference (a few fp32 eps):
    # a barely trained network's flat maps hold near-ties that such a difference flips by a whole pixel
    assert len(maps) == 2
    difference, margins = np.abs(maps[0] - maps[1]).max().item(), peak_margins(maps[0].numpy())
    assert margins.min() > 2 * difference, f"the test network's peaks ({margins.min():.1e}) are within {difference:.1e}"
    np.testing.assert_allclose(b[..., :2], a[..., :2], atol=1e-3)
    np.testing.assert_allclose(b[..., 2], a[..., 2], atol=1e-4)


def test_safetensors_export_predicts_the_same_without_lightning_or_pickle(exported, pose_checkpoint, synthetic):
    path = sorted(synthetic["val_images"].glob("*.jpg"))[0]
    code = (
        "import sys, json, numpy as np; from hsjp import PoseEstimator\n"
        f"e = PoseEstimator.from_checkpoint({str(exported / 'pose.safetensors')!r})\n"
        f"p = e.predict({str(path)!r})\n"
        "print(json.dumps({'lightning': 'lightning' in sys.modules, 'kpts': p.keypoints.tolist(),"
        " 'arch': e.config['model']['arch']}))\n"
    )
    proc = run_process([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["lightning"] is False and got["arch"] == "test_resnet"
    np.testing.assert_array_equal(np.array(got["kpts"], np.float32),
                                  PoseEstimator.from_checkpoint(pose_checkpoint).predict(path).keypoints)


def test_export_refuses_what_is_not_a_pose_network(tmp_path, exported, pose_checkpoint, capsys):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(exported / "pose.safetensors"))
    save_file({k: v for k, v in tensors.items() if k.startswith("backbone.")}, str(tmp_path / "backbone.safetensors"),
              metadata={"architecture": "test_resnet", "task": "jigsaw"})  # what `hsjp pretrain` writes
    with pytest.raises(CheckpointError, match="not an exported pose network"):
        PoseEstimator.from_checkpoint(tmp_path / "backbone.safetensors")
    ckpt = torch.load(pose_checkpoint, weights_only=True, map_location="cpu")
    ckpt["hyper_parameters"]["cfg"]["task"] = "jigsaw"
    torch.save(ckpt, tmp_path / "pretext.ckpt")
    assert main(["export", "--ckpt", str(tmp_path / "pretext.ckpt"), "--format", "onnx",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pretext.ckpt: a jigsaw (pretext) checkpoint" in err
    assert not (tmp_path / "x.onnx").exists()
