import pytest
import torch

from helpers import pretend_cpu_bf16
from hsjp.cli import main
from hsjp.config import load_config
from hsjp.training import precision
from hsjp.training.precision import resolve_precision, slow_precision_warning
from hsjp.training.provenance import read_provenance
from hsjp.training.run import train


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_takes_bf16_only_where_the_cpu_computes_it(monkeypatch, native, expected):
    pretend_cpu_bf16(monkeypatch, native)
    assert resolve_precision("auto", on_cuda=False) == expected
    assert resolve_precision("16-mixed", on_cuda=False) == "16-mixed"  # an explicit choice is kept


@pytest.mark.parametrize("value", ["32", "bf16", "16-mixed", "64-true"])
def test_every_precision_lightning_knows_is_accepted(value):
    assert resolve_precision(value, on_cuda=False) == value


def test_an_unknown_precision_is_one_line_before_any_training(tmp_path, tiny_overrides, capsys):
    code = main(["finetune", "--config", "cpu_r18_128x96", "--out", str(tmp_path / "run"), *tiny_overrides,
                 "--precision", "bf17"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    assert "trainer.precision='bf17' is not a precision" in err and "bf16-mixed" in err
    assert not (tmp_path / "run").exists()  # refused before the run wrote anything


def test_amx_alone_counts_as_native_bf16(monkeypatch):
    pretend_cpu_bf16(monkeypatch, False, amx=True)
    assert resolve_precision("auto", on_cuda=False) == "bf16-mixed"


def test_auto_on_cuda_asks_the_gpu(monkeypatch):
    pretend_cpu_bf16(monkeypatch, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", on_cuda=True) == "bf16-mixed"


def test_asking_for_bf16_on_a_cpu_that_emulates_it_warns(monkeypatch):
    pretend_cpu_bf16(monkeypatch, False)
    assert "emulated" in slow_precision_warning("bf16-mixed", on_cuda=False)
    assert slow_precision_warning("32-true", on_cuda=False) is None
    pretend_cpu_bf16(monkeypatch, True)
    assert slow_precision_warning("bf16-mixed", on_cuda=False) is None


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_a_run_records_the_precision_auto_resolved_to(tmp_path, tiny_overrides, monkeypatch, capsys, native, expected):
    pretend_cpu_bf16(monkeypatch, native)
    cfg = load_config(None, [*tiny_overrides, "trainer.precision=auto", "train.epochs=1",
                             "train.limit_train_batches=1", "train.limit_val_batches=1"])
    train(cfg, tmp_path)
    assert f"precision: {expected}" in (tmp_path / "config.yaml").read_text()
    assert f"({expected})" in capsys.readouterr().out
    assert read_provenance(tmp_path)[0]["trainer"]["precision"] == expected
    assert cfg.trainer.precision == "auto"  # the caller's config is not changed under it


def test_no_shipped_config_forces_bf16():
    # bf16 forced on a CPU that emulates it made the README's demo and the CPU configs ~20x slower
    from pathlib import Path

    import hsjp

    names = [p.stem for p in (Path(hsjp.__file__).parent / "configs").glob("*.yaml") if "experiment" not in p.stem]
    chosen = [load_config(n).trainer.precision for n in names]
    assert set(chosen) == {precision.AUTO, "32-true"} and chosen.count(precision.AUTO) == 6
