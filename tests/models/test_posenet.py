import pytest
import torch

from hsjp.errors import CheckpointError, ConfigError
from hsjp.losses import HeatmapMSELoss
from hsjp.models import create_model


@pytest.mark.parametrize("arch", ["resnet18", "hrnet_w18_small_v2"])
def test_output_is_one_quarter_resolution_and_every_parameter_learns(arch):
    model = create_model(arch, num_outputs=12)
    out = model(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 12, 16, 24)
    out.square().sum().backward()
    # DDP without find_unused_parameters needs every parameter to get a gradient
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_unknown_arch_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model.arch 'resnet7'"):
        create_model("resnet7", 17)


def test_sum_reduction_keeps_backbone_gradients_well_above_adam_eps():
    torch.manual_seed(0)
    model = create_model("resnet18", 12)
    x = torch.randn(4, 3, 128, 96)
    target = torch.zeros(4, 12, 32, 24)
    target[:, :, 10:14, 8:12] = 1
    grads = {}
    for reduction in ("sum", "mean"):
        model.zero_grad()
        HeatmapMSELoss(reduction)(model(x), target, torch.ones(4, 12)).backward()
        grads[reduction] = torch.cat([p.grad.abs().flatten() for p in model.backbone.parameters()]).median().item()
    # the per-pixel mean shrinks every gradient by h*w = 768
    assert grads["sum"] / grads["mean"] == pytest.approx(768, rel=1e-3)
    assert grads["sum"] > 1000 * 1e-8  # three orders of magnitude above Adam's eps


def test_unreadable_weights_file_is_named(tmp_path):
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: not a readable torch checkpoint"):
        create_model("resnet18", 17, init=str(bad))
    with pytest.raises(CheckpointError, match="weights file not found"):
        create_model("resnet18", 17, init=str(tmp_path / "missing.safetensors"))
