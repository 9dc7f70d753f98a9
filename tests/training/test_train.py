import json
import shutil
import sys
import warnings

import lightning as L
import pytest
import torch

from hsjp.config import load_config
from hsjp.errors import ConfigError, DataError
from hsjp.training.provenance import read_provenance
from hsjp.training.run import train
from hsjp.viz import read_metrics_csv


def _cfg(overrides, *extra, task="pose"):
    cfg = load_config(None, [*overrides, *extra])
    cfg.task = task
    return cfg


def test_a_few_steps_lower_the_loss_and_write_the_run(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides, "augment.enabled=false", "data.shuffle=false", "train.epochs=8",
               "train.limit_train_batches=2", "train.milestones=[100]", "train.val_every_n_epochs=4")
    metrics = train(cfg, tmp_path)
    losses = [v for _, v in read_metrics_csv(tmp_path / "logs" / "metrics.csv")["train/loss"]]
    assert len(losses) == 16
    assert sum(losses[-4:]) < 0.8 * sum(losses[:4])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["global_step"] == 16 and 0 <= saved["AP"] <= 1 and "PCK@0.1" in saved
    assert metrics["AP"] == saved["AP"]
    # the last epoch was validated in fit: those are the final metrics, not validated (and logged) twice
    curve = read_metrics_csv(tmp_path / "logs", val_x="step")["val/AP"]
    assert [x for x, _ in curve] == [8, 16] and curve[-1][1] == metrics["AP"]
    assert (tmp_path / "config.yaml").read_text().count("limit_train_batches: 2") == 1
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and (tmp_path / "curves.png").is_file()


def test_a_last_epoch_that_fit_did_not_validate_is_validated_after_it(tmp_path, tiny_overrides):
    metrics = train(_cfg(tiny_overrides, "train.epochs=3", "train.limit_train_batches=2", "train.val_every_n_epochs=2"),
                    tmp_path)
    curve = read_metrics_csv(tmp_path / "logs", val_x="step")["val/AP"]
    assert curve == [(4, curve[0][1]), (6, metrics["AP"])]  # the final one at the step it followed, as fit logs
    assert [x for x, _ in read_metrics_csv(tmp_path / "logs")["val/AP"]] == [2, 3]  # and at the epoch count


@pytest.mark.parametrize("workers", [0, 1])
def test_how_often_a_run_validates_does_not_change_what_it_trains(tmp_path, tiny_overrides, workers):
    # the label-efficiency curves validate often to read "steps to scratch's final PCK": watching must not
    # change the run (a validation's loader once drew from the global RNG that the training shuffle and
    # the augmentation draw from, so validating every epoch instead of every other gave other weights)
    losses = []
    for every in (1, 3):
        out = tmp_path / f"every{every}"
        train(_cfg(tiny_overrides, "train.epochs=3", "train.limit_train_batches=2", f"data.num_workers={workers}",
                   f"train.val_every_n_epochs={every}"), out)
        losses.append([v for _, v in read_metrics_csv(out / "logs" / "metrics.csv")["train/loss"]])
    assert len(losses[0]) == 6 and losses[0] == losses[1]


def test_rerun_resumes_from_last_checkpoint(tmp_path, tiny_overrides, capsys):
    train(_cfg(tiny_overrides, "train.epochs=1", "train.limit_train_batches=2"), tmp_path)
    metrics = train(_cfg(tiny_overrides, "train.epochs=2", "train.limit_train_batches=2"), tmp_path)
    assert "finetune: 4 steps, resuming at step 2" in capsys.readouterr().out
    assert metrics["global_step"] == 4  # 2 steps were not redone
    # each start says what ran it: the resumed one too, and from which step
    starts = read_provenance(tmp_path)
    assert [s["resumed_from_step"] for s in starts] == [0, 2]
    assert starts[1]["libraries"]["torch"] == torch.__version__ and starts[1]["command"] == sys.argv
    # Lightning's CSV logger would delete the first part of the curve; it is kept as a part file
    assert len(read_metrics_csv(tmp_path / "logs")["train/loss"]) == 4


def test_epochs_shorter_than_the_log_interval_log_across_epochs_without_a_warning(tmp_path, tiny_overrides):
    with warnings.catch_warnings(record=True) as caught:  # keeps the filters in force, unlike pytest's recwarn
        train(_cfg(tiny_overrides, "train.epochs=4", "train.limit_train_batches=2", "trainer.log_every_n_steps=4",
                   "data.val_ann="), tmp_path)
    assert [step for step, _ in read_metrics_csv(tmp_path / "logs")["train/loss"]] == [4, 8]  # steps done
    assert not [w for w in caught if "logging interval" in str(w.message)]


def test_extra_callbacks_see_every_step_beside_the_runs_own(tmp_path, tiny_overrides):
    class Steps(L.Callback):
        seen: list[int] = []

        def on_train_batch_end(self, trainer, *args) -> None:
            self.seen.append(trainer.global_step)

    meter = Steps()
    train(_cfg(tiny_overrides, "train.epochs=2", "train.limit_train_batches=2", "data.val_ann="), tmp_path,
          callbacks=[meter])
    assert meter.seen == [1, 2, 3, 4]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # the run's own checkpointing still ran


def test_input_size_must_fit_the_network_stride(tmp_path, tiny_overrides):
    with pytest.raises(ConfigError, match="multiples of 32"):
        train(_cfg(tiny_overrides, "data.input_size=[48,64]"), tmp_path)


def _break_images(synthetic, tmp_path, count):
    images = tmp_path / "images"
    shutil.copytree(synthetic["train_images"], images)
    for p in sorted(images.iterdir())[:count]:
        p.write_bytes(b"corrupt")
    return images


def test_undecodable_training_images_are_skipped_then_stop_the_run(tmp_path, synthetic, tiny_overrides):
    images = _break_images(synthetic, tmp_path, 1)
    tolerant = _cfg(tiny_overrides, f"data.train_images={images}", "train.epochs=1", "train.max_skipped_fraction=0.2")
    with pytest.warns(UserWarning, match="cannot decode image"):
        train(tolerant, tmp_path / "tolerant")
    strict = _cfg(tiny_overrides, f"data.train_images={images}", "train.epochs=1")
    with pytest.raises(DataError, match=r"training images failed to load \(more than 1%\)"):
        train(strict, tmp_path / "strict")


def test_pretext_run_exports_backbone_and_metrics(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides, "jigsaw.grid=[2,2]", "train.epochs=1", task="jigsaw")
    train(cfg, tmp_path)
    pretext = json.loads((tmp_path / "pretext_metrics.json").read_text())
    assert pretext["chance_placement_acc"] == 0.25 and 0 <= pretext["placement_acc"] <= 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "network.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == "test_resnet" and json.loads(meta["grid"]) == [2, 2]
    assert json.loads(meta["input_size"]) == [64, 64] and "data" in meta and "epochs" in meta
    assert len(json.loads(meta["provenance"])) == 1 and json.loads(meta["provenance"]) == read_provenance(tmp_path)


def test_pretext_from_a_folder_of_person_images(tmp_path, synthetic, tiny_overrides):
    cfg = _cfg(tiny_overrides, "data.train_ann=", f"data.train_image_folder={synthetic['train_images']}",
               "jigsaw.grid=[2,2]", "train.epochs=1", "train.limit_train_batches=2", task="jigsaw")
    metrics = train(cfg, tmp_path)
    assert metrics["global_step"] == 2 and (tmp_path / "network.safetensors").is_file()
    with pytest.raises(DataError, match="no images"):
        train(_cfg(tiny_overrides, "data.train_ann=", f"data.train_image_folder={tmp_path / 'logs'}", "jigsaw.grid=[2,2]",
                   task="jigsaw"),
              tmp_path / "empty")


@pytest.mark.parametrize("setting, says", [
    ("train.lr=-1", "train.lr=-1.0 must be > 0"),
    ("train.weight_decay=-0.1", "train.weight_decay=-0.1 must be >= 0"),
    ("train.gamma=0", "train.gamma=0.0 must be > 0"),
    ("train.epochs=0", "train.epochs=0 must be >= 1"),
    ("train.max_steps=0", "train.max_steps=0 must be -1 (no limit) or >= 1"),
    ("data.batch_size=0", "data.batch_size=0 must be >= 1"),
    ("data.val_batch_size=-2", "data.val_batch_size=-2 must be >= 1"),
    ("data.num_workers=-1", "data.num_workers=-1 must be >= 0"),
    ("trainer.accelerator=tpu9", "trainer settings (accelerator=tpu9, "),
    ("trainer.strategy=ddpx", "invalid strategy name"),
    ("trainer.devices=0", "devices=0"),
])
def test_settings_torch_or_lightning_would_reject_are_one_line_before_the_run_writes(tmp_path, tiny_overrides, setting, says):
    with pytest.raises(ConfigError) as refused:
        train(_cfg(tiny_overrides, setting), tmp_path / "run")
    assert says in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "run" / "config.yaml").exists()
