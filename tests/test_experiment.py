"""The experiment runner on tiny generated data: every arm, resume, and an honest ImageNet arm."""

import json

import pytest

from hsjp.errors import ConfigError
from hsjp.experiment import EvalSet, ExperimentConfig, load_experiment, run_experiment


@pytest.fixture
def experiment(tiny_overrides, synthetic, tmp_path):
    common = [*tiny_overrides, "train.limit_train_batches=2", "train.epochs=1"]
    missing_weights = tmp_path / "no-such-imagenet-weights.pth"
    return ExperimentConfig(
        pose_config="cpu_r18_128x96", pose_overrides=common,
        pretext_config="hsjp_cpu_r18_128x96", pretext_overrides=[*common, "jigsaw.grid=[2,2]"],
        arms=["scratch", "hsjp"], seeds=[0], label_fractions=[1.0], imagenet_init=str(missing_weights),
        eval_sets=[EvalSet("synthetic_val", str(synthetic["val_ann"]), str(synthetic["val_images"]))],
    )


def test_arms_run_resume_and_report(tmp_path, experiment):
    out = tmp_path / "exp"
    experiment.eval_sets.append(EvalSet("limbs", experiment.eval_sets[0].ann, experiment.eval_sets[0].images, "5-16"))
    run_experiment(experiment, out)
    scratch_done = out / "arms" / "scratch-labels1-seed0" / "done.json"
    stamp = scratch_done.stat().st_mtime_ns
    # a second run, now with every arm: finished arms are skipped, the rest run
    experiment.arms = ["scratch", "hsjp", "scratch_equal_compute", "imagenet"]
    records = run_experiment(experiment, out)
    assert scratch_done.stat().st_mtime_ns == stamp
    by_arm = {r["arm"]: r for r in records}
    assert by_arm["hsjp"]["pretrain_steps"] == 2
    # equal compute: the pretrain's 2 steps plus the finetune's 2
    assert by_arm["scratch_equal_compute"]["steps"] == 4 and by_arm["scratch"]["steps"] == 2
    assert by_arm["imagenet"]["status"] == "not run" and "no-such-imagenet-weights.pth" in by_arm["imagenet"]["reason"]
    results = json.loads((out / "results.json").read_text())
    assert {r["arm"] for r in results["rows"]} == {"scratch", "hsjp", "scratch_equal_compute", "imagenet"}
    table = (out / "results.md").read_text()
    assert "| hsjp | 1 | synthetic_val | 1 | 2 + 2 |" in table and "not run" in table
    assert "| scratch_equal_compute | 1 | synthetic_val | 1 | 4 |" in table
    for png in ("curves_finetune.png", "curves_pretext.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (out / "arms" / "hsjp-labels1-seed0" / "eval" / "synthetic_val" / "predictions.png").is_file()
    assert "| hsjp | 1 | limbs | 1 | 2 + 2 |" in table
    limbs = json.loads((out / "arms" / "hsjp-labels1-seed0" / "eval" / "limbs" / "metrics.json").read_text())
    assert limbs["keypoints"] == list(range(5, 17))
    # the hsjp arm really started from the pretext backbone
    hsjp_cfg = (out / "arms" / "hsjp-labels1-seed0" / "train" / "config.yaml").read_text()
    assert "backbone.safetensors" in hsjp_cfg


def test_interrupted_arm_resumes_from_its_checkpoint(tmp_path, experiment, capsys):
    out = tmp_path / "exp"
    run_experiment(experiment, out)
    done = out / "arms" / "hsjp-labels1-seed0" / "done.json"
    done.unlink()  # as if killed after training, before the arm was recorded
    run_experiment(experiment, out)
    printed = capsys.readouterr().out
    assert "scratch-labels1-seed0: done, skipped" in printed and "resuming from" in printed
    assert done.is_file()


def test_bad_keypoint_subset_fails_before_any_arm_runs(tmp_path, experiment):
    experiment.eval_sets[0].keypoints = "5-99"
    with pytest.raises(ConfigError, match="outside 0-16"):
        run_experiment(experiment, tmp_path / "exp")
    assert not (tmp_path / "exp" / "arms").exists()


def test_unknown_arm_is_refused(tmp_path):
    from hsjp.errors import ConfigError

    (tmp_path / "e.yaml").write_text("arms: [scratch, magic]\n")
    with pytest.raises(ConfigError, match="unknown arm 'magic'"):
        load_experiment(str(tmp_path / "e.yaml"))


def test_demo_runs_end_to_end_on_generated_data(tmp_path, capsys):
    from hsjp.experiment import run_demo

    records = run_demo(tmp_path / "demo", fast=True)
    assert [r["arm"] for r in records] == ["scratch", "hsjp"] and all(r["status"] == "done" for r in records)
    assert "| scratch | 1 | val |" in capsys.readouterr().out
    assert (tmp_path / "demo" / "results.md").is_file() and (tmp_path / "demo" / "data" / "annotations").is_dir()


def test_label_overrides_lengthen_one_fractions_schedule(tmp_path, experiment):
    from hsjp.errors import ConfigError
    from hsjp.experiment import pose_config

    experiment.label_fractions = [1.0, 0.5]
    experiment.label_overrides = {"0.5": ["train.epochs=2"]}
    assert pose_config(experiment, 0, 0.5).train.epochs == 2
    assert pose_config(experiment, 0, 1.0).train.epochs == 1
    assert pose_config(experiment, 0, 0.5).data.label_fraction == 0.5
    experiment.label_overrides = {"0.50": ["train.epochs=3"]}  # keys are read as numbers
    assert pose_config(experiment, 0, 0.5).train.epochs == 3
    (tmp_path / "e.yaml").write_text("label_fractions: [1.0]\nlabel_overrides: {'ten': ['train.epochs=9']}\n")
    with pytest.raises(ConfigError, match="label_overrides: key 'ten' is not a label fraction"):
        load_experiment(str(tmp_path / "e.yaml"))


def test_report_only_runs_nothing_and_lists_unfinished_arms(tmp_path, experiment):
    out = tmp_path / "exp"
    experiment.arms = ["scratch"]
    run_experiment(experiment, out)
    experiment.arms = ["scratch", "hsjp"]
    records = run_experiment(experiment, out, report_only=True)
    assert [r["status"] for r in records] == ["done", "not run"] and records[1]["reason"] == "unfinished"
    assert not (out / "pretrain").exists() and not (out / "arms" / "hsjp-labels1-seed0").exists()
    assert "| hsjp | 1 | not run: unfinished (seed 0) |" in (out / "results.md").read_text()
