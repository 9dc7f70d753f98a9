"""Pretrained weights: export, and what each transfer scope fills (or refuses to fill)."""

import pytest
import torch

from hsjp.errors import CheckpointError, ConfigError
from hsjp.models import create_model
from hsjp.models.weights import export_network, read_state_dict


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Weights no fresh init produces, so a copied tensor is told apart from a re-initialised one."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_export_holds_backbone_and_head_with_metadata(tmp_path):
    src = _perturbed(create_model("resnet18", 12))
    path = export_network(src, tmp_path / "network.safetensors", {"architecture": "resnet18", "grid": [4, 3]})
    state, meta = read_state_dict(path)
    assert meta["architecture"] == "resnet18" and meta["grid"] == "[4, 3]"
    assert {k.split(".")[0] for k in state} == {"backbone", "head"}
    no_head = export_network(src, tmp_path / "backbone_only.safetensors", {}, with_head=False)
    assert {k.split(".")[0] for k in read_state_dict(no_head)[0]} == {"backbone"}


@pytest.mark.parametrize("transfer", ["backbone", "network"])
def test_transfer_scope_fills_what_it_says(tmp_path, transfer):
    src = _perturbed(create_model("resnet18", 12))  # a 4x3 pretext: 12 puzzle heatmaps
    path = export_network(src, tmp_path / "network.safetensors", {})
    dst = create_model("resnet18", 17, init=str(path), transfer=transfer)
    fresh = create_model("resnet18", 17)
    assert _equal(src.backbone, dst.backbone)
    # the deconvolutions come along only for 'network'; the final conv (12 vs 17 maps) never does
    assert _equal(src.head[:-1], dst.head[:-1]) == (transfer == "network")
    assert not torch.equal(src.head[-1].bias[:12], dst.head[-1].bias[:12])
    assert dst.head[-1].weight.shape == fresh.head[-1].weight.shape
    parts = {r.part: r for r in dst.load_report}
    assert parts["backbone"].fraction == 1.0
    assert ("head" in parts) == (transfer == "network")
    if transfer == "network":
        assert parts["head"].filled == parts["head"].total == len([k for k in fresh.head[:-1].state_dict()
                                                                   if not k.endswith("num_batches_tracked")])


def test_network_transfer_of_hrnet_is_its_backbone(tmp_path):
    src = _perturbed(create_model("hrnet_w18_small_v2", 4))
    path = export_network(src, tmp_path / "network.safetensors", {})
    dst = create_model("hrnet_w18_small_v2", 17, init=str(path), transfer="network")
    assert _equal(src.backbone, dst.backbone)
    assert [r.part for r in dst.load_report] == ["backbone"]  # its head is only the final conv


def test_head_of_another_width_is_refused(tmp_path):
    path = export_network(create_model("resnet18", 4, deconv_channels=128), tmp_path / "narrow.safetensors", {})
    with pytest.raises(CheckpointError) as err:
        create_model("resnet18", 17, init=str(path), transfer="network")
    msg = str(err.value)
    assert "narrow.safetensors" in msg and "head" in msg and "shape-mismatched" in msg
    # the backbone alone still fits
    assert create_model("resnet18", 17, init=str(path), transfer="backbone").load_report[0].fraction == 1.0


def test_backbone_only_file_cannot_fill_a_network(tmp_path):
    path = export_network(create_model("resnet18", 4), tmp_path / "backbone_only.safetensors", {}, with_head=False)
    with pytest.raises(CheckpointError, match="backbone_only.safetensors: holds no head weights"):
        create_model("resnet18", 17, init=str(path), transfer="network")
    with pytest.raises(ConfigError, match="model.transfer"):
        create_model("resnet18", 17, init=str(path), transfer="everything")


def test_lightning_checkpoint_state_transfers_the_network(tmp_path):
    """A pretext run's last.ckpt (``model.backbone.*``, ``model.head.*``) is a valid source too."""
    src = _perturbed(create_model("resnet18", 4))
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, ckpt)
    dst = create_model("resnet18", 17, init=str(ckpt), transfer="network")
    assert _equal(src.backbone, dst.backbone) and _equal(src.head[:-1], dst.head[:-1])


def test_weights_of_another_architecture_are_refused_with_keys_named(tmp_path):
    path = export_network(create_model("resnet18", 12), tmp_path / "r18.safetensors", {})
    with pytest.raises(CheckpointError) as err:
        create_model("resnet50", 17, init=str(path))
    msg = str(err.value)
    assert "r18.safetensors" in msg and "missing" in msg and "shape-mismatched" in msg and "filled" in msg
