"""The classification-jigsaw pretext: it learns, it exports a backbone, and only the backbone transfers."""

import json

import numpy as np
import pytest
import torch

from hsjp.codecs import jigsaw_codec
from hsjp.config import load_config
from hsjp.data.crops import to_tensor
from hsjp.data.targets import PuzzleClassTarget
from hsjp.errors import CheckpointError
from hsjp.models import create_model
from hsjp.models.weights import read_state_dict
from hsjp.training.run import train


def test_classifier_learns_a_tiny_fixed_set():
    """Six permutations of one textured crop: the pooled classifier must tell them apart."""
    torch.manual_seed(0)
    cfg = load_config(None, ["task=jigsaw_cls", "data.input_size=[64,64]", "jigsaw.grid=[2,2]", "jigsaw.permutations=6"])
    codec = jigsaw_codec(cfg)
    rng = np.random.default_rng(0)
    crop = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # blocky: no edge cue
    puzzles = {}  # one puzzle per class, drawn as training draws them
    for seed in range(200):
        sample = PuzzleClassTarget(codec)(crop, np.zeros((0, 3)), np.random.default_rng(seed))
        puzzles.setdefault(sample["label"], to_tensor(sample["image"]))
    assert len(puzzles) == 6
    x, y = torch.stack(list(puzzles.values())), torch.tensor(list(puzzles))
    model = create_model("resnet18", len(codec.permutation_table), head="classifier")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).all()


def test_pretext_run_exports_the_backbone_only(tmp_path, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "task=jigsaw_cls", "jigsaw.grid=[2,2]", "train.epochs=1",
                             "train.limit_train_batches=2"])
    metrics = train(cfg, tmp_path / "pre")
    pretext = json.loads((tmp_path / "pre" / "pretext_metrics.json").read_text())
    assert pretext["chance_permutation_acc"] == pytest.approx(1 / 23)
    assert 0 <= pretext["permutation_acc"] <= 1 and 0 <= pretext["placement_acc"] <= 1
    assert metrics["global_step"] == 2
    state, meta = read_state_dict(tmp_path / "pre" / "network.safetensors")
    assert meta["task"] == "jigsaw_cls" and {k.split(".")[0] for k in state} == {"backbone"}
    weights = str(tmp_path / "pre" / "network.safetensors")
    assert create_model("test_resnet", 17, init=weights, transfer="backbone").load_report[0].fraction == 1.0
    with pytest.raises(CheckpointError, match="holds no head weights"):
        create_model("test_resnet", 17, init=weights, transfer="network")
    ckpt = torch.load(tmp_path / "pre" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["cfg"]["task"] == "jigsaw_cls" and ckpt["hyper_parameters"]["num_outputs"] == 23


@pytest.mark.parametrize("accuracy, warned", [(0.044, True), (0.5, False)])
def test_a_pretext_at_chance_is_called_untrained(tmp_path, capsys, accuracy, warned):
    """The classification jigsaw on a 4x3 grid sat at chance for 3,000 steps: the run must say so."""
    from hsjp.training.modules import module_for
    from hsjp.training.run import write_outputs

    cfg = load_config(None, ["task=jigsaw_cls", "jigsaw.grid=[2,2]"])
    write_outputs(cfg, module_for(cfg, 23, []), tmp_path, {"permutation_acc": accuracy, "epochs": 1, "global_step": 2})
    err = capsys.readouterr().err
    assert ("permutation_acc 4.4 % is at chance (4.3 %)" in err) == warned
    assert json.loads((tmp_path / "pretext_metrics.json").read_text())["chance_permutation_acc"] == pytest.approx(1 / 23)
