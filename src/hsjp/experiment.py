"""The paper's comparison as one resumable command: scratch vs HSJP vs ImageNet initialisation.

Arms share one finetune recipe, one evaluation and one dataset; they differ only in where the
backbone's weights come from (and, for ``scratch_equal_compute``, in running as many optimiser steps
as HSJP's pretrain plus finetune, so that a gain cannot be bought by compute alone). Each arm writes
``done.json`` atomically when it finishes; a re-run skips those and resumes the rest from their
last checkpoints.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hsjp.config import Config, load_config, save_config
from hsjp.data.annotations import load_annotations
from hsjp.errors import CheckpointError, ConfigError
from hsjp.evaluation.metrics import keypoint_subset
from hsjp.io import atomic_write_json, atomic_write_text

ARMS = ("scratch", "hsjp", "jigsaw_cls", "scratch_equal_compute", "imagenet")
#: The arms whose finetune starts from a label-free pretext of this experiment, and that pretext's task.
PRETEXT_ARMS = {"hsjp": "jigsaw", "jigsaw_cls": "jigsaw_cls"}
KEEP_CHECKPOINTS = ("last", "all", "none")
REPORTED = ("AP", "AP50", "AP75", "APM", "APL", "AR", "PCK@0.1")


@dataclass
class EvalSet:
    name: str = ""
    ann: str = ""
    images: str = ""
    # score only these keypoints (``hsjp evaluate --keypoints``), e.g. '5-16' on COCO for a model
    # finetuned on LSPET, which never labels the face
    keypoints: str | None = None


@dataclass
class ExperimentConfig:
    pose_config: str = "cpu_r18_128x96"
    pose_overrides: list[str] = field(default_factory=list)
    pretext_config: str = "hsjp_cpu_r18_128x96"
    pretext_overrides: list[str] = field(default_factory=list)
    # the classification-jigsaw arm's pretext: the HSJP pretext config (same crops, grid, shuffling) with
    # task=jigsaw_cls, then these
    cls_pretext_overrides: list[str] = field(default_factory=list)
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    seeds: list[int] = field(default_factory=lambda: [0])
    label_fractions: list[float] = field(default_factory=lambda: [1.0])
    # extra pose overrides for one label fraction, keyed by the fraction ('0.1'): with a tenth of the
    # labels, the same epochs are a tenth of the steps, so a schedule usually wants lengthening
    label_overrides: dict[str, list[str]] = field(default_factory=dict)
    # seeds for one label fraction instead of ``seeds`` (small budgets are noisier: more seeds there)
    fraction_seeds: dict[str, list[int]] = field(default_factory=dict)
    # run an arm only at these label fractions (e.g. scratch_equal_compute at 0.1); default: all of them
    arm_fractions: dict[str, list[float]] = field(default_factory=dict)
    # 'imagenet' asks timm (needs the network); a path names a local timm checkpoint instead
    imagenet_init: str = "imagenet"
    # empty: the pose config's validation set alone
    eval_sets: list[EvalSet] = field(default_factory=list)
    # what a finished run (arm or pretext) keeps in its checkpoints/: 'last' (what the report
    # evaluates, and what predict, export and evaluate take; best.ckpt, which nothing here reads,
    # goes), 'all', or 'none' (records and exported pretext weights stay). Each checkpoint holds the
    # optimiser's state too: ~185 MB for ResNet-18, two per run
    keep_checkpoints: str = "last"


def load_experiment(name: str, overrides: list[str] | None = None) -> ExperimentConfig:
    exp = load_config(name, overrides, schema=ExperimentConfig)
    unknown = [a for a in exp.arms if a not in ARMS]
    if unknown:
        raise ConfigError(f"unknown arm {unknown[0]!r}; arms are {', '.join(ARMS)}")
    for name, keys in (("label_overrides", exp.label_overrides), ("fraction_seeds", exp.fraction_seeds),
                       ("arm_fractions", [f for fs in exp.arm_fractions.values() for f in fs])):
        for key in keys:
            try:
                ok = 0 < float(key) <= 1
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"{name}: {key!r} is not a label fraction in (0, 1]")
    unknown = [a for a in exp.arm_fractions if a not in ARMS]
    if unknown:
        raise ConfigError(f"arm_fractions: unknown arm {unknown[0]!r}; arms are {', '.join(ARMS)}")
    if exp.keep_checkpoints not in KEEP_CHECKPOINTS:
        raise ConfigError(f"keep_checkpoints: {exp.keep_checkpoints!r} is not one of {', '.join(KEEP_CHECKPOINTS)}")
    return exp


def planned_runs(exp: ExperimentConfig) -> list[tuple[str, float, int]]:
    """Every (arm, label fraction, seed) the experiment runs, seed-major so that one seed's pretrain
    serves all of that seed's label fractions before the next seed's is trained."""
    runs = []
    for seed in sorted({s for f in exp.label_fractions for s in seeds_for(exp, f)}):
        for frac in exp.label_fractions:
            if seed not in seeds_for(exp, frac):
                continue
            runs += [(arm, frac, seed) for arm in exp.arms
                     if arm not in exp.arm_fractions or any(float(f) == frac for f in exp.arm_fractions[arm])]
    return runs


def seeds_for(exp: ExperimentConfig, fraction: float) -> list[int]:
    return next((list(seeds) for key, seeds in exp.fraction_seeds.items() if float(key) == fraction), list(exp.seeds))


def pose_config(exp: ExperimentConfig, seed: int, fraction: float, extra: list[str] = ()) -> Config:
    for_fraction = [o for key, overrides in exp.label_overrides.items() if float(key) == fraction for o in overrides]
    return load_config(exp.pose_config, [*exp.pose_overrides, *for_fraction,
                                         f"train.seed={seed}", f"data.label_fraction={fraction}", *extra])


def pretext_config(exp: ExperimentConfig, seed: int, task: str = "jigsaw") -> Config:
    extra = exp.cls_pretext_overrides if task == "jigsaw_cls" else []
    cfg = load_config(exp.pretext_config, [*exp.pretext_overrides, f"task={task}", *extra, f"train.seed={seed}"])
    cfg.task = task
    return cfg


def finetune_steps(cfg: Config) -> int:
    """Optimiser steps a finetune run will take (single device: the experiment's unit of compute)."""
    from hsjp.training.datamodule import CropDataModule

    dm = CropDataModule(cfg)
    dm.setup("fit")
    per_epoch = max(1, len(dm.train_set) // cfg.data.batch_size)
    lim = cfg.train.limit_train_batches
    per_epoch = min(per_epoch, lim) if isinstance(lim, int) else max(1, int(per_epoch * lim))
    steps = cfg.train.epochs * per_epoch
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps > 0 else steps


def equal_compute_overrides(cfg: Config, extra_steps: int) -> list[str]:
    """Stretch the finetune schedule (epochs, milestones, max_steps) by the pretrain's steps."""
    base = finetune_steps(cfg)
    factor = (base + extra_steps) / base
    out = [f"train.epochs={math.ceil(cfg.train.epochs * factor)}",
           f"train.milestones=[{','.join(str(round(m * factor)) for m in cfg.train.milestones)}]"]
    if cfg.train.max_steps > 0:
        out.append(f"train.max_steps={base + extra_steps}")
    return out


def run_pretrain(exp: ExperimentConfig, seed: int, out: Path, task: str = "jigsaw") -> dict:
    """One pretext per seed and task, trained once and reused by every label fraction of that seed."""
    from hsjp.training.provenance import read_provenance
    from hsjp.training.run import PRETRAINED_FILE, train

    run = out / ("pretrain" if task == "jigsaw" else f"pretrain_{task}") / f"seed{seed}"
    done = run / "pretext_metrics.json"
    if not (done.is_file() and (run / PRETRAINED_FILE).is_file()):
        train(pretext_config(exp, seed, task), run, name=f"pretrain {task} seed {seed}")
        prune_checkpoints(run, exp.keep_checkpoints)
    return {**json.loads(done.read_text()), "weights": str(run / PRETRAINED_FILE), "dir": str(run),
            "provenance": read_provenance(run)}


def eval_sets(exp: ExperimentConfig, cfg: Config) -> list[EvalSet]:
    return exp.eval_sets or [EvalSet("val", cfg.data.val_ann, cfg.data.val_images)]


def run_arm(exp: ExperimentConfig, arm: str, fraction: float, seed: int, out: Path) -> None:
    """Train and evaluate one arm and write its record (``done.json``, which the report reads); an arm
    already finished is skipped."""
    from hsjp.evaluate import evaluate_checkpoint
    from hsjp.training.provenance import read_provenance
    from hsjp.training.run import train

    name = arm_name(arm, fraction, seed)
    arm_dir = out / "arms" / name
    done = arm_dir / "done.json"
    if done.is_file():
        print(f"== {name}: done, skipped")
        return
    record = {"arm": arm, "label_fraction": fraction, "seed": seed, "dir": str(arm_dir)}
    extra: list[str] = []
    if arm in ("hsjp", "jigsaw_cls", "scratch_equal_compute"):
        pre = run_pretrain(exp, seed, out, PRETEXT_ARMS.get(arm, "jigsaw"))
        record["pretrain_steps"] = pre["global_step"]
        record["pretrain_placement_acc"] = pre.get("placement_acc")
        record["provenance"] = {"pretext": pre["provenance"]}
        if arm == "hsjp":
            extra.append(f"model.init={pre['weights']}")
        elif arm == "jigsaw_cls":  # its head is a classifier: only the backbone transfers
            extra += [f"model.init={pre['weights']}", "model.transfer=backbone"]
            record["pretrain_permutation_acc"] = pre.get("permutation_acc")
        else:
            extra += equal_compute_overrides(pose_config(exp, seed, fraction), pre["global_step"])
    elif arm == "imagenet":  # a classifier's weights: only the backbone transfers
        extra += [f"model.init={exp.imagenet_init}", "model.transfer=backbone"]
    cfg = pose_config(exp, seed, fraction, extra)
    if cfg.model.init != "scratch":
        record["transfer"] = cfg.model.transfer
    try:
        metrics = train(cfg, arm_dir / "train", name=name)
    except (ConfigError, CheckpointError) as e:
        if arm != "imagenet":
            raise
        record.update(status="not run", reason=str(e))
        atomic_write_json(done, record)
        print(f"== {name}: not run: {e}")
        return
    ckpt = arm_dir / "train" / "checkpoints" / "last.ckpt"
    record.update(status="done", steps=metrics["global_step"], val_curve=val_pck_curve(arm_dir / "train"), eval={})
    # which code, libraries and machine made the numbers: enough to trace a record that a re-run does not repeat
    record["provenance"] = {**record.get("provenance", {}), "finetune": read_provenance(arm_dir / "train")}
    for s in eval_sets(exp, cfg):
        record["eval"][s.name] = evaluate_checkpoint(str(ckpt), s.ann, s.images, arm_dir / "eval" / s.name,
                                                     num_workers=cfg.data.num_workers, quiet=True, show=8,
                                                     keypoints=s.keypoints)
    atomic_write_json(done, record)
    prune_checkpoints(arm_dir / "train", exp.keep_checkpoints)


def prune_checkpoints(run: Path, keep: str) -> None:
    """Delete what ``keep_checkpoints`` leaves out of a finished run: a re-run skips the run from its
    record (or exported weights), so nothing resumes from these files again."""
    folder = run / "checkpoints"
    if keep == "none":
        shutil.rmtree(folder, ignore_errors=True)
    elif keep == "last":
        (folder / "best.ckpt").unlink(missing_ok=True)


def arm_name(arm: str, fraction: float, seed: int) -> str:
    return f"{arm}-labels{fraction:g}-seed{seed}"


def run_experiment(exp: ExperimentConfig, out: str | Path, report_only: bool = False,
                   only_seeds: list[int] | None = None, only_arms: list[str] | None = None,
                   only_fractions: list[float] | None = None) -> list[dict]:
    """Run every arm not yet finished, then write the report.

    ``report_only`` runs nothing: it reports the finished arms and lists the others as unfinished,
    so a long experiment can be read while it runs (or when part of it was never run); the filters
    below are refused with it, as the report always covers the whole plan.
    ``only_seeds`` runs only those seeds' arms (and pretexts), so that one process per seed can share
    the work across cores or machines: seeds share nothing, and each process's report covers every
    planned run, finished or not, so the last one to finish writes the whole report.
    ``only_arms`` and ``only_fractions`` likewise run only those arms or label fractions, so the runs
    that decide most can go first when the compute to hand will not cover the whole plan.
    """
    out = Path(out)
    runs = planned_runs(exp)
    for flag, noun, picked, planned in (
            ("--seeds", "seed", only_seeds, sorted({seed for _, _, seed in runs})),
            ("--arms", "arm", only_arms, list(dict.fromkeys(arm for arm, _, _ in runs))),
            ("--fractions", "label fraction", only_fractions, sorted({frac for _, frac, _ in runs}))):
        if report_only and picked is not None:
            # the report is one file covering every planned run; a filter here would either be ignored
            # or overwrite the whole report with a part of it
            raise ConfigError(f"--report-only reports every planned run: {flag} chooses what to run, not what to report")
        unknown = [c for c in picked or [] if c not in planned]
        if unknown:
            show = [f"{v:g}" if isinstance(v, float) else str(v) for v in (unknown[0], *planned)]
            raise ConfigError(f"{flag}: {noun} {show[0]} is not one the experiment plans ({', '.join(show[1:])})")

    def chosen(arm: str, frac: float, seed: int) -> bool:
        return all(only is None or value in only
                   for only, value in ((only_seeds, seed), (only_arms, arm), (only_fractions, frac)))

    if not report_only:
        check_runs(exp, [run for run in runs if chosen(*run)])
        save_config(exp, out / "experiment.yaml")
        for run in runs:
            if chosen(*run):
                run_arm(exp, *run, out)
    # read every record after the runs, not before: other processes sharing ``out`` finish arms meanwhile
    records = finished_records(out, runs)
    write_report(exp, records, out)
    return records


def check_runs(exp: ExperimentConfig, runs: list[tuple[str, float, int]]) -> None:
    """Every config the runs will train with, and every eval set's keypoint subset, checked now: a typo
    in one label fraction's overrides, or a setting torch refuses, should fail before the first
    pretext, not after hours of the runs planned before it."""
    from hsjp.training.run import check_settings

    for s in exp.eval_sets:
        if s.keypoints is not None:
            anns = load_annotations(s.ann, s.images, check_images=False)
            keypoint_subset(s.keypoints, anns.num_keypoints, anns.keypoint_names)
    # a config depends on the seed and fraction (finetunes) or the seed and task (pretexts), not the arm
    for seed, fraction in {(seed, fraction) for _, fraction, seed in runs}:
        check_settings(pose_config(exp, seed, fraction))
    for seed, task in {(seed, PRETEXT_ARMS.get(arm, "jigsaw")) for arm, _, seed in runs
                       if arm in (*PRETEXT_ARMS, "scratch_equal_compute")}:
        check_settings(pretext_config(exp, seed, task))


def finished_arm(out: Path, arm: str, fraction: float, seed: int) -> dict:
    done = out / "arms" / arm_name(arm, fraction, seed) / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    return {"arm": arm, "label_fraction": fraction, "seed": seed, "status": "not run", "reason": "unfinished"}


def finished_records(out: Path, runs: list[tuple[str, float, int]]) -> list[dict]:
    """Every planned run's record, then every arm finished under another plan. Each start re-saves
    ``experiment.yaml`` with its own overrides (one process given ``fraction_seeds`` for a seed, the
    next not), so a report read through the newest plan alone would drop arms finished on disk."""
    planned = set(runs)
    others = [json.loads(done.read_text()) for done in sorted((out / "arms").glob("*/done.json"))]
    return [finished_arm(out, *run) for run in runs] + [
        r for r in others if (r["arm"], r["label_fraction"], r["seed"]) not in planned]


def val_pck_curve(train_dir: Path) -> list[list[float]]:
    """A finetune's validation PCK@0.1 as [step, value] pairs, from its CSV log.

    Kept in the arm's record too, so that a report can be rebuilt after run folders (hundreds of MB
    of checkpoints each) are deleted."""
    from hsjp.viz import read_metrics_csv

    return [[x, y] for x, y in read_metrics_csv(train_dir / "logs", val_x="step").get("val/PCK@0.1", [])]


def steps_to_reach_scratch(records: list[dict]) -> dict[tuple[str, float], list[int | None]]:
    """Per (arm, label fraction), one entry per seed: the first finetune step at which the run's own
    validation PCK@0.1 reached the final validation PCK@0.1 of scratch with the same labels and seed
    (None: never). A head start is worth the finetune steps it saves; this reads them off the curves,
    the record's own or, for a record written before records kept them, its run folder's log."""
    curves = {}
    for r in records:
        if r.get("status") == "done":
            curve = r.get("val_curve") or val_pck_curve(Path(r["dir"]) / "train")
            curves[(r["arm"], r["label_fraction"], r["seed"])] = curve
    reached: dict[tuple[str, float], list[int | None]] = {}
    for (arm, frac, seed), curve in curves.items():
        reference = curves.get(("scratch", frac, seed))
        if reference and curve:
            target = reference[-1][1]
            reached.setdefault((arm, frac), []).append(next((int(x) for x, y in curve if y >= target), None))
    return reached


def _reach_cell(steps: list[int | None] | None, seeds: int | None = None) -> str:
    """``seeds``: how many seeds the row has; fewer entries than that means some seeds have no pair of
    curves to compare: their own validation curve is gone, or scratch's of the same seed is (a record
    made before records kept curves, whose run folder was deleted)."""
    if not steps:
        return "-"
    hit = [s for s in steps if s is not None]
    cell = "never"
    if hit:
        mean = f"{int(np.mean(hit)):,}"
        cell = mean if len(hit) == len(steps) else f"{mean} ({len(hit)}/{len(steps)} seeds; others never)"
    if seeds is not None and len(steps) < seeds:
        cell += f" (from {len(steps)} of {seeds} seeds; the others lack their curve or scratch's)"
    return cell


def summarise(records: list[dict]) -> list[dict]:
    """Mean and spread over seeds for each (arm, label fraction, eval set)."""
    reach = steps_to_reach_scratch(records)
    groups: dict[tuple, list[dict]] = {}
    skipped: dict[tuple, dict[str, list[int]]] = {}  # (arm, fraction) -> reason -> seeds
    for r in records:
        if r.get("status") != "done":
            skipped.setdefault((r["arm"], r["label_fraction"]), {}).setdefault(r.get("reason", ""), []).append(r["seed"])
            continue
        # a pretext arm's compute is its pretext plus its finetune: the table shows both, as the
        # equal-compute arm is judged against their sum
        steps = {"steps": r["steps"], "pretrain_steps": r.get("pretrain_steps", 0) if r["arm"] in PRETEXT_ARMS else 0}
        for set_name, m in r["eval"].items():
            groups.setdefault((r["arm"], r["label_fraction"], set_name), []).append({**m, **steps})
    rows = []
    for (arm, frac, set_name), ms in groups.items():
        row = {"arm": arm, "label_fraction": frac, "eval_set": set_name, "seeds": len(ms),
               "steps": int(np.mean([m["steps"] for m in ms])),
               "pretrain_steps": int(np.mean([m["pretrain_steps"] for m in ms])), "boxes": "ground-truth boxes",
               "steps_to_scratch_pck": reach.get((arm, frac))}
        for k in REPORTED:
            vals = [m[k] for m in ms if k in m]
            if vals:
                row[k] = float(np.mean(vals))
                row[f"{k}_std"] = float(np.std(vals))
        rows.append(row)
    for (arm, frac), reasons in skipped.items():
        why = "; ".join(f"{reason} (seed {', '.join(map(str, seeds))})" for reason, seeds in reasons.items())
        rows.append({"arm": arm, "label_fraction": frac, "status": "not run", "reason": why})
    return rows


def markdown_table(rows: list[dict]) -> str:
    head = ("| arm | labels | eval set | seeds | steps (pretext + finetune) | " + " | ".join(REPORTED)
            + " | finetune steps to scratch's final val PCK@0.1 |")
    lines = [head, "|" + "---|" * (6 + len(REPORTED))]
    for r in rows:
        if r.get("status") == "not run":
            lines.append(f"| {r['arm']} | {r['label_fraction']:g} | not run: {r['reason']} |" + " |" * (3 + len(REPORTED)))
            continue
        cells = []
        for k in REPORTED:
            v = r.get(k)
            cells.append("-" if v is None or v < 0 else f"{100 * v:.1f}" + (f" ± {100 * r[k + '_std']:.1f}" if r["seeds"] > 1 else ""))
        steps = f"{r['pretrain_steps']} + {r['steps']}" if r["pretrain_steps"] else str(r["steps"])
        lines.append(f"| {r['arm']} | {r['label_fraction']:g} | {r['eval_set']} | {r['seeds']} | {steps} | "
                     + " | ".join(cells) + f" | {_reach_cell(r.get('steps_to_scratch_pck'), r['seeds'])} |")
    return "\n".join(lines)


def provenance_note(records: list[dict]) -> str:
    """Which code and machines made the finished runs (pretext and finetune), counted once per record.

    The same code and seed trained other weights on a CPU with AMX than on one without (RESULTS
    13.5), so a table pooled from several sessions says what each part ran on."""
    made: dict[str, int] = {}
    unknown = 0
    for r in records:
        if r.get("status") != "done":
            continue
        starts = [e for entries in r.get("provenance", {}).values() for e in entries]
        if not starts:
            unknown += 1
        for label in dict.fromkeys(map(_made_by, starts)):
            made[label] = made.get(label, 0) + 1
    parts = [f"{label}: {n} run{'s' * (n != 1)}" for label, n in made.items()]
    if unknown:
        parts.append(f"{unknown} run{'s' * (unknown != 1)} made before records kept this")
    return "Code and machines: " + "; ".join(parts) + "." if parts else ""


def _made_by(entry: dict) -> str:
    git, machine = entry.get("git"), entry.get("machine", {})
    code = f"hsjp {git['commit'][:7]}{' with changes' if git['dirty'] else ''}" if git else f"hsjp {entry.get('hsjp')}"
    where = machine.get("gpu") or machine.get("cpu", "?")
    flags = [] if "gpu" in machine else machine.get("cpu_flags", [])
    if "amx_bf16" in flags:
        where += " (AMX)"
    elif flags and not any(f.startswith("avx512") for f in flags):
        where += " (no AVX-512)"  # the same model name exists with and without it; numerics differ (RESULTS 15)
    return f"{code} on {where}"


def write_report(exp: ExperimentConfig, records: list[dict], out: Path) -> None:
    from hsjp.viz import plot_experiment_curves, plot_label_efficiency

    rows = summarise(records)
    atomic_write_json(out / "results.json", {"rows": rows, "arms": records})
    table = markdown_table(rows)
    note = ("Values in %, OKS AP/AR from pycocotools on ground-truth person boxes, flip test on; PCK@0.1 is the share "
            "of labelled keypoints within 0.1 x the longer box side. Mean ± std over seeds where seeds > 1. The last "
            "column reads each run's validation curve: the first finetune step at which it reached the final "
            "validation PCK@0.1 of scratch with the same labels and seed (mean over the seeds that did).")
    made = provenance_note(records)
    atomic_write_text(out / "results.md", f"# Results\n\n{table}\n\n{note}\n" + (f"\n{made}\n" if made else ""))
    plot_experiment_curves(records, out)
    if len({r["label_fraction"] for r in rows if r.get("status") != "not run"}) > 1:
        plot_label_efficiency(rows, out / "label_efficiency.png")
    print(table)
    print(f"\nresults: {out / 'results.md'}, {out / 'results.json'}; curves: {out / 'curves_finetune.png'}, "
          f"{out / 'curves_pretext.png'}")


def _find_split(root: Path, split: str) -> tuple[str, str]:
    """Annotation file and image folder of one split of a data root (synthetic, LSPET or COCO layout)."""
    anns = sorted((root / "annotations").glob(f"person_keypoints*{split}*.json"))
    if len(anns) != 1:
        raise ConfigError(f"{root}/annotations: expected one person_keypoints*{split}*.json, found {len(anns)}")
    for images in (root / "images" / split, root / "images", root / f"{split}2017"):
        if images.is_dir():
            return str(anns[0]), str(images)
    raise ConfigError(f"{root}: no image folder for split {split!r} (images/{split}, images or {split}2017)")


def demo_config(data_root: Path, fast: bool = False) -> ExperimentConfig:
    """scratch vs hsjp on one data root, sized to finish in about five minutes on a 2-core CPU."""
    train_ann, train_images = _find_split(data_root, "train")
    val_ann, val_images = _find_split(data_root, "val")
    data = [f"data.train_ann={train_ann}", f"data.train_images={train_images}",
            f"data.val_ann={val_ann}", f"data.val_images={val_images}"]
    # fast: a smoke run (six steps of timm's tiny ResNet) that checks data, install and pipeline, not the numbers
    steps = ["train.max_steps=6", "train.limit_val_batches=1", "model.arch=test_resnet",
             "model.deconv_channels=32"] if fast else []
    return ExperimentConfig(
        pose_config="demo", pose_overrides=[*data, *steps],
        pretext_config="hsjp_demo", pretext_overrides=[*data, *steps],
        arms=["scratch", "hsjp"], seeds=[0], label_fractions=[1.0],
        eval_sets=[EvalSet("val", val_ann, val_images)],
    )


def run_demo(out: str | Path, data: str | None = None, fast: bool = False) -> list[dict]:
    """The README's main job: generate data (unless given), then run and report the experiment."""
    out = Path(out)
    if data is None:
        from hsjp.data.synthetic import generate_dataset

        root = out / "data"
        if not (root / "annotations" / "person_keypoints_val.json").is_file():
            print(f"generating a synthetic COCO-format dataset in {root}")
            generate_dataset(root, n_train=160, n_val=40, seed=0)
    else:
        root = Path(data)
    return run_experiment(demo_config(root, fast), out)
