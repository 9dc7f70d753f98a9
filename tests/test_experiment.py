"""The experiment runner on tiny generated data: every arm, resume, and an honest ImageNet arm."""

import json
import re

import pytest

from hsjp.errors import ConfigError
from hsjp.experiment import (
    EvalSet,
    ExperimentConfig,
    load_experiment,
    provenance_note,
    run_experiment,
    val_pck_curve,
)


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
    # the record keeps the finetune's validation curve: the last epoch's validation, not repeated after fit
    assert len(by_arm["hsjp"]["val_curve"]) == 1
    assert by_arm["hsjp"]["val_curve"] == val_pck_curve(out / "arms" / "hsjp-labels1-seed0" / "train")
    assert by_arm["hsjp"]["transfer"] == "network", "HSJP reuses the pretext's deconvolutions by default"
    # each record says which code and machine made its pretext and finetune
    assert set(by_arm["hsjp"]["provenance"]) == {"pretext", "finetune"} and set(by_arm["scratch"]["provenance"]) == {"finetune"}
    assert [len(v) for v in by_arm["hsjp"]["provenance"].values()] == [1, 1]
    assert by_arm["hsjp"]["provenance"]["pretext"][0]["machine"]["cpus"] > 0
    # and the report says so: every finished run here was made by this code on this machine
    made = by_arm["hsjp"]["provenance"]["finetune"][0]
    assert f"on {made['machine']['cpu']}" in (out / "results.md").read_text()
    assert provenance_note(records).endswith(": 3 runs.")
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
    assert "network.safetensors" in hsjp_cfg
    # finished runs keep the checkpoint the report evaluated (keep_checkpoints: last), not best.ckpt
    for run in (out / "arms" / "hsjp-labels1-seed0" / "train", out / "pretrain" / "seed0"):
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.ckpt"]


def test_keep_checkpoints_none_or_all_and_a_bad_value_refused(tmp_path, experiment):
    experiment.keep_checkpoints = "none"
    record = next(r for r in run_experiment(experiment, tmp_path / "none", only_arms=["hsjp"]) if r["arm"] == "hsjp")
    assert record["status"] == "done" and record["eval"]["synthetic_val"]["AP"] >= 0
    assert not (tmp_path / "none" / "arms" / "hsjp-labels1-seed0" / "train" / "checkpoints").exists()
    assert not (tmp_path / "none" / "pretrain" / "seed0" / "checkpoints").exists()
    assert (tmp_path / "none" / "pretrain" / "seed0" / "network.safetensors").is_file()
    experiment.keep_checkpoints = "all"
    run_experiment(experiment, tmp_path / "all", only_arms=["scratch"])
    kept = tmp_path / "all" / "arms" / "scratch-labels1-seed0" / "train" / "checkpoints"
    assert sorted(p.name for p in kept.iterdir()) == ["best.ckpt", "last.ckpt"]
    (tmp_path / "e.yaml").write_text("keep_checkpoints: best\n")
    with pytest.raises(ConfigError, match="keep_checkpoints: 'best' is not one of last, all, none"):
        load_experiment(str(tmp_path / "e.yaml"))


def test_interrupted_arm_resumes_from_its_checkpoint(tmp_path, experiment, capsys):
    out = tmp_path / "exp"
    run_experiment(experiment, out)
    done = out / "arms" / "hsjp-labels1-seed0" / "done.json"
    done.unlink()  # as if killed after training, before the arm was recorded
    run_experiment(experiment, out)
    printed = capsys.readouterr().out
    assert "scratch-labels1-seed0: done, skipped" in printed and "hsjp-labels1-seed0: 2 steps, resuming at step 2 ->" in printed
    assert done.is_file()


def test_bad_keypoint_subset_fails_before_any_arm_runs(tmp_path, experiment):
    experiment.eval_sets[0].keypoints = "5-99"
    with pytest.raises(ConfigError, match="outside 0-16"):
        run_experiment(experiment, tmp_path / "exp")
    assert not (tmp_path / "exp" / "arms").exists()


@pytest.mark.parametrize("where, bad, says", [
    ("label_overrides", {"0.5": ["train.epoch=3"]}, "Key 'epoch' not in 'TrainConfig'"),  # a typo, the last fraction's
    ("label_overrides", {"0.5": ["train.lr=0"]}, "train.lr=0.0 must be > 0"),
    ("pretext_overrides", ["trainer.precision=bf17"], "trainer.precision='bf17'"),
])
def test_a_bad_setting_of_any_planned_run_fails_before_the_first_run(tmp_path, experiment, where, bad, says):
    # scratch at 1.0 runs first and would train; hsjp's pretext, and the 0.5 fraction, come later
    experiment.label_fractions = [1.0, 0.5]
    setattr(experiment, where, bad if where == "label_overrides" else [*experiment.pretext_overrides, *bad])
    with pytest.raises(ConfigError, match=re.escape(says)):
        run_experiment(experiment, tmp_path / "exp")
    assert not (tmp_path / "exp" / "arms").exists() and not (tmp_path / "exp" / "pretrain").exists()


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
    with pytest.raises(ConfigError, match="label_overrides: 'ten' is not a label fraction"):
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
    report = (out / "results.md").read_text()
    with pytest.raises(ConfigError, match=r"^--report-only reports every planned run: --arms chooses what to run"):
        run_experiment(experiment, out, report_only=True, only_arms=["hsjp"])
    assert (out / "results.md").read_text() == report  # refused before the report is rewritten


def test_planned_runs_seed_major_with_per_fraction_seeds_and_arms(experiment):
    from hsjp.experiment import planned_runs

    experiment.arms = ["scratch", "hsjp", "scratch_equal_compute"]
    experiment.seeds = [0]
    experiment.label_fractions = [1.0, 0.1]
    experiment.fraction_seeds = {"0.1": [0, 1, 2]}
    experiment.arm_fractions = {"scratch_equal_compute": [0.1]}
    assert planned_runs(experiment) == [
        ("scratch", 1.0, 0), ("hsjp", 1.0, 0),
        ("scratch", 0.1, 0), ("hsjp", 0.1, 0), ("scratch_equal_compute", 0.1, 0),
        ("scratch", 0.1, 1), ("hsjp", 0.1, 1), ("scratch_equal_compute", 0.1, 1),
        ("scratch", 0.1, 2), ("hsjp", 0.1, 2), ("scratch_equal_compute", 0.1, 2),
    ]


def test_bad_per_fraction_settings_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("arm_fractions: {scratch_equal_compute: [2.0]}\n")
    with pytest.raises(ConfigError, match="arm_fractions: 2.0 is not a label fraction"):
        load_experiment(str(tmp_path / "a.yaml"))
    (tmp_path / "b.yaml").write_text("arm_fractions: {magic: [0.1]}\n")
    with pytest.raises(ConfigError, match="arm_fractions: unknown arm 'magic'"):
        load_experiment(str(tmp_path / "b.yaml"))


def _fake_run(root, arm, fraction, seed, curve):
    run = root / f"{arm}-{fraction}-{seed}"
    (run / "train" / "logs").mkdir(parents=True)
    rows = ["epoch,step,val/PCK@0.1"] + [f"{i},{step - 1},{pck}" for i, (step, pck) in enumerate(curve)]
    (run / "train" / "logs" / "metrics.csv").write_text("\n".join(rows) + "\n")
    return {"arm": arm, "label_fraction": fraction, "seed": seed, "status": "done", "dir": str(run)}


def test_steps_to_reach_scratch_reads_each_seeds_own_curves(tmp_path):
    from hsjp.experiment import _reach_cell, steps_to_reach_scratch

    records = [
        _fake_run(tmp_path, "scratch", 0.1, 0, [(100, 0.20), (200, 0.30), (300, 0.40)]),
        _fake_run(tmp_path, "hsjp", 0.1, 0, [(100, 0.35), (200, 0.41), (300, 0.45)]),
        _fake_run(tmp_path, "scratch", 0.1, 1, [(100, 0.10), (200, 0.20), (300, 0.50)]),
        _fake_run(tmp_path, "hsjp", 0.1, 1, [(100, 0.30), (200, 0.45), (300, 0.49)]),  # never reaches 0.50
        _fake_run(tmp_path, "hsjp", 1.0, 0, [(100, 0.9)]),  # no scratch at 1.0: nothing to compare with
    ]
    reach = steps_to_reach_scratch(records)
    assert reach[("hsjp", 0.1)] == [200, None]
    assert reach[("scratch", 0.1)] == [300, 300]
    assert ("hsjp", 1.0) not in reach
    assert _reach_cell(reach[("hsjp", 0.1)]) == "200 (1/2 seeds; others never)"
    assert _reach_cell([None]) == "never" and _reach_cell(None) == "-" and _reach_cell([1000, 3000]) == "2,000"
    assert _reach_cell([200], seeds=3) == "200 (from 1 of 3 seeds; the others lack their curve or scratch's)"


def test_records_keep_their_curves_so_a_report_survives_deleted_run_folders(tmp_path):
    import shutil

    from hsjp.experiment import markdown_table, steps_to_reach_scratch, summarise

    records = [
        _fake_run(tmp_path, "scratch", 0.1, 0, [(100, 0.20), (200, 0.30), (300, 0.40)]),
        _fake_run(tmp_path, "hsjp", 0.1, 0, [(100, 0.35), (200, 0.41), (300, 0.45)]),
        _fake_run(tmp_path, "scratch", 0.1, 1, [(100, 0.10), (200, 0.20), (300, 0.50)]),
        _fake_run(tmp_path, "hsjp", 0.1, 1, [(100, 0.30), (200, 0.52), (300, 0.55)]),
    ]
    for r in records[:2]:  # seed 0's records were written with their curves; seed 1's before records kept them
        r["val_curve"] = val_pck_curve(tmp_path / f"{r['arm']}-0.1-0" / "train")
        shutil.rmtree(r["dir"])
    assert records[0]["val_curve"] == [[100.0, 0.2], [200.0, 0.3], [300.0, 0.4]]
    assert steps_to_reach_scratch(records)[("hsjp", 0.1)] == [200, 200]
    for r in records[2:]:  # and seed 1's folders are gone too: its steps are unknown, and the table says so
        shutil.rmtree(r["dir"])
    for r in records:
        r.update(steps=300, eval={"val": {"AP": 0.1, "PCK@0.1": 0.4}})
    assert steps_to_reach_scratch(records)[("hsjp", 0.1)] == [200]
    assert "| 200 (from 1 of 2 seeds; the others lack their curve or scratch's) |" in markdown_table(summarise(records))


def test_label_efficiency_with_the_classification_arm(tmp_path, experiment):
    out = tmp_path / "exp"
    experiment.arms = ["scratch", "jigsaw_cls"]
    experiment.seeds = [0, 1]
    experiment.label_fractions = [1.0, 0.5]
    experiment.fraction_seeds = {"1.0": [0]}
    records = run_experiment(experiment, out)
    assert [(r["arm"], r["label_fraction"], r["seed"]) for r in records] == [
        ("scratch", 1.0, 0), ("jigsaw_cls", 1.0, 0), ("scratch", 0.5, 0), ("jigsaw_cls", 0.5, 0),
        ("scratch", 0.5, 1), ("jigsaw_cls", 0.5, 1)]
    # one classification pretext per seed, reused by every label fraction of that seed
    assert sorted(p.name for p in (out / "pretrain_jigsaw_cls").iterdir()) == ["seed0", "seed1"]
    assert not (out / "pretrain").exists()
    cfg = (out / "arms" / "jigsaw_cls-labels0.5-seed1" / "train" / "config.yaml").read_text()
    assert "pretrain_jigsaw_cls/seed1/network.safetensors" in cfg and "transfer: backbone" in cfg
    cls = next(r for r in records if r["arm"] == "jigsaw_cls")
    assert 0 <= cls["pretrain_permutation_acc"] <= 1
    table = (out / "results.md").read_text()
    assert "| jigsaw_cls | 0.5 | synthetic_val | 2 | 2 + 2 |" in table
    assert "finetune steps to scratch's final val PCK@0.1" in table
    assert (out / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_one_process_per_seed_shares_the_work_and_the_last_writes_the_whole_report(tmp_path, experiment):
    out = tmp_path / "exp"
    experiment.seeds = [0, 1]
    records = run_experiment(experiment, out, only_seeds=[1])
    assert [(r["seed"], r["status"]) for r in records] == [(0, "not run"), (0, "not run"), (1, "done"), (1, "done")]
    assert not (out / "pretrain" / "seed0").exists() and (out / "pretrain" / "seed1").is_dir()
    records = run_experiment(experiment, out, only_seeds=[0])
    assert all(r["status"] == "done" for r in records)
    assert "| hsjp | 1 | synthetic_val | 2 | 2 + 2 |" in (out / "results.md").read_text()


def test_the_report_takes_arms_another_process_finished_while_this_one_ran(tmp_path, experiment, monkeypatch):
    import hsjp.experiment

    out = tmp_path / "exp"
    experiment.arms, experiment.seeds = ["scratch"], [0, 1]
    real = hsjp.experiment.run_arm

    def beside(exp, arm, fraction, seed, out_):  # seed 0's process finishes its arm during seed 1's
        real(exp, arm, fraction, 0, out_)
        real(exp, arm, fraction, seed, out_)
    monkeypatch.setattr(hsjp.experiment, "run_arm", beside)
    records = run_experiment(experiment, out, only_seeds=[1])
    assert [(r["seed"], r["status"]) for r in records] == [(0, "done"), (1, "done")]
    assert "| scratch | 1 | synthetic_val | 2 |" in (out / "results.md").read_text()


def test_the_report_keeps_arms_finished_under_a_wider_plan(tmp_path, experiment):
    out = tmp_path / "exp"
    experiment.arms, experiment.seeds = ["scratch"], [0, 1]
    run_experiment(experiment, out, only_seeds=[0])
    experiment.seeds = [1]  # a later process started with a narrower plan re-saves experiment.yaml
    records = run_experiment(experiment, out)
    assert sorted((r["seed"], r["status"]) for r in records) == [(0, "done"), (1, "done")]
    assert "| scratch | 1 | synthetic_val | 2 |" in (out / "results.md").read_text()


def test_a_seed_the_experiment_does_not_plan_is_refused(tmp_path, experiment, capsys):
    from hsjp.cli import main
    from hsjp.config import save_config

    save_config(experiment, tmp_path / "e.yaml")
    assert main(["experiment", "--config", str(tmp_path / "e.yaml"), "--out", str(tmp_path / "exp"), "--seeds", "7"]) == 2
    assert "--seeds: seed 7 is not one the experiment plans (0)" in capsys.readouterr().err
    assert not (tmp_path / "exp" / "arms").exists()


def test_arms_option_runs_only_those_arms_and_refuses_an_unplanned_one(tmp_path, experiment):
    out = tmp_path / "exp"
    records = run_experiment(experiment, out, only_arms=["scratch"])
    assert [(r["arm"], r["status"]) for r in records] == [("scratch", "done"), ("hsjp", "not run")]
    assert not (out / "pretrain").exists()
    with pytest.raises(ConfigError, match=r"--arms: arm imagenet is not one the experiment plans \(scratch, hsjp\)"):
        run_experiment(experiment, out, only_arms=["imagenet"])


def test_fractions_option_runs_only_those_fractions_and_refuses_an_unplanned_one(tmp_path, experiment):
    out = tmp_path / "exp"
    experiment.label_fractions = [0.5, 1.0]
    records = run_experiment(experiment, out, only_arms=["scratch"], only_fractions=[0.5])
    assert [(r["arm"], r["label_fraction"], r["status"]) for r in records] == [
        ("scratch", 0.5, "done"), ("hsjp", 0.5, "not run"), ("scratch", 1.0, "not run"), ("hsjp", 1.0, "not run")]
    with pytest.raises(ConfigError, match=r"--fractions: label fraction 0.3 is not one the experiment plans \(0.5, 1\)"):
        run_experiment(experiment, out, only_fractions=[0.3])


def test_imagenet_arm_from_a_local_file_transfers_the_backbone_only(tmp_path, experiment):
    """A classifier's weights have no heatmap head: the arm must not inherit the default 'network' scope."""
    from hsjp.models import create_model
    from hsjp.models.weights import export_network

    experiment.imagenet_init = str(export_network(create_model("test_resnet", 4), tmp_path / "imagenet.safetensors",
                                                  {}, with_head=False))
    experiment.arms = ["imagenet"]
    (record,) = run_experiment(experiment, tmp_path / "exp")
    assert record["status"] == "done" and record["transfer"] == "backbone"


def test_provenance_note_counts_each_record_once_per_code_and_machine():
    def start(commit, dirty, flags, gpu=None):
        machine = {"cpu": "Xeon", "cpu_flags": flags, **({"gpu": gpu} if gpu else {})}
        return {"git": {"commit": commit, "dirty": dirty}, "machine": machine}

    amx = start("a" * 40, False, ["avx512_bf16", "amx_bf16"])
    records = [
        {"status": "done", "provenance": {"pretext": [amx], "finetune": [amx]}},  # one run, not two
        {"status": "done", "provenance": {"finetune": [start("b" * 40, True, ["avx512_bf16"]), amx]}},  # resumed elsewhere
        {"status": "done", "provenance": {"finetune": [start("a" * 40, False, [], gpu="NVIDIA H200")]}},
        {"status": "done", "provenance": {"finetune": [start("a" * 40, False, ["avx2"])]}},
        {"status": "done"},
        {"status": "not run", "provenance": {"finetune": [amx]}},
    ]
    assert provenance_note(records) == (
        "Code and machines: hsjp aaaaaaa on Xeon (AMX): 2 runs; hsjp bbbbbbb with changes on Xeon: 1 run; "
        "hsjp aaaaaaa on NVIDIA H200: 1 run; hsjp aaaaaaa on Xeon (no AVX-512): 1 run; "
        "1 run made before records kept this.")
    assert provenance_note([{"status": "not run"}]) == ""
