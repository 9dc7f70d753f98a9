"""Ablation of the HSJP pretext settings, judged by what they transfer, not by the pretext itself.

Placement accuracy is not comparable across grids (chance is 1/K), so each variant is judged by a
finetune probe started from its pretrained weights. Nothing here touches an evaluation split:
LSPET's train split is divided by annotation id into 'fit' (pretraining and probe finetuning) and
'probe' (the last ``--holdout`` persons, for the probe's PCK@0.1 and AP).

Each pretext runs the schedule the comparison uses (``--pretrain-steps``, lr x0.1 after about 5/6
of them), per seed; each probe finetunes ``--probe-steps`` on ``--probe-fraction`` of the fit
persons, once per transfer scope in ``--transfer``. Runs go seed by seed, each pretext followed by its
probes (and the seed's scratch probe), so every finished seed is a complete comparison. Resumable:
finished runs are skipped, an interrupted one resumes from its last checkpoint; ``ablation.md`` is
rewritten after every probe. ``--phase pretrain`` runs only the pretexts; ``--phase report`` trains
nothing and tabulates the finished runs. Usage:

    python benchmarks/ablation_pretext.py --out runs/ablation --seeds 0 1 --pretrain-steps 3000 \
        --transfer backbone network
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from hsjp.config import load_config
from hsjp.io import atomic_write_json, atomic_write_text
from hsjp.training.run import train

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lspet"
BATCH = 16  # the CPU configs' batch size
VARIANTS = {
    "grid2x2": ["jigsaw.grid=[2,2]"],
    "grid4x3": ["jigsaw.grid=[4,3]"],
    "grid4x4": ["jigsaw.grid=[4,4]"],
    # the 4x3 puzzle with the crop's out-of-image region filled by reflection instead of black bands
    "grid4x3_reflect": ["jigsaw.grid=[4,3]", "data.border=reflect"],
    # the classic classification jigsaw (Noroozi & Favaro) on the 2x2 grid: all 23 non-identity orders
    "cls2x2": ["task=jigsaw_cls", "jigsaw.grid=[2,2]", "jigsaw.permutations=23"],
}


def split_train(out: Path, holdout: int) -> dict[str, Path]:
    """fit / probe annotation files cut from LSPET train (by annotation id)."""
    paths = {name: out / "splits" / f"lspet_train_{name}.json" for name in ("fit", "probe")}
    if all(p.is_file() for p in paths.values()):
        return paths
    data = json.loads((LSPET / "annotations" / "person_keypoints_lspet_train.json").read_text())
    anns = sorted(data["annotations"], key=lambda a: a["id"])
    for name, part in (("fit", anns[:-holdout]), ("probe", anns[-holdout:])):
        ids = {a["image_id"] for a in part}
        atomic_write_json(paths[name], {**data, "annotations": part,
                                        "images": [i for i in data["images"] if i["id"] in ids]}, indent=None)
    return paths


def schedule(steps: int, persons: int) -> list[str]:
    """``steps`` optimiser steps with one lr decay at about 5/6 of them, as the comparison's runs."""
    epochs = math.ceil(steps / max(1, persons // BATCH))
    return [f"train.max_steps={steps}", f"train.epochs={epochs}", f"train.milestones=[{max(1, round(epochs * 5 / 6))}]"]


def pretrain(out: Path, name: str, seed: int, data: list[str], steps: int, fit_persons: int,
             args: argparse.Namespace) -> Path | None:
    run = out / name / f"seed{seed}" / f"pretrain{steps}"
    if not (run / "pretext_metrics.json").is_file():
        if args.phase == "report":
            return None
        cfg = load_config("hsjp_cpu_r18_128x96", [*data, *VARIANTS[name], *schedule(steps, fit_persons),
                                                  f"train.seed={seed}", f"trainer.num_threads={args.threads}"])
        print(f"== pretrain {name} seed {seed} ({steps} steps) -> {run}", flush=True)
        train(cfg, run)
    return run


def probe(out: Path, name: str, seed: int, init: str, transfer: str, data: list[str], args: argparse.Namespace,
          fit_persons: int, tag: str) -> dict | None:
    run = out / name / f"seed{seed}" / f"probe-{tag}-{transfer}-f{args.probe_fraction:g}-{args.probe_steps}"
    if not (run / "metrics.json").is_file():
        if args.phase == "report":
            return None
        persons = max(1, round(args.probe_fraction * fit_persons))
        cfg = load_config("cpu_r18_128x96", [
            *data, f"model.init={init}", f"model.transfer={transfer}", f"data.label_fraction={args.probe_fraction}",
            *schedule(args.probe_steps, persons), "train.val_every_n_epochs=1000", f"train.seed={seed}",
            f"trainer.num_threads={args.threads}"])
        print(f"== probe {run}", flush=True)
        train(cfg, run)
    return json.loads((run / "metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pretrain-steps", type=int, nargs="+", default=[3000])
    p.add_argument("--probe-steps", type=int, default=1500)
    p.add_argument("--probe-fraction", type=float, default=0.1)
    p.add_argument("--transfer", nargs="+", default=["backbone"], choices=["backbone", "network"])
    p.add_argument("--holdout", type=int, default=1000)
    p.add_argument("--variants", nargs="+", default=["grid2x2", "grid4x3", "grid4x4"], choices=list(VARIANTS))
    p.add_argument("--phase", choices=["pretrain", "all", "report"], default="all",
                   help="pretrain: the pretexts only; report: train nothing, tabulate the finished runs")
    p.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    args = p.parse_args()
    out = Path(args.out)
    split = split_train(out, args.holdout)
    fit_persons = len(json.loads(split["fit"].read_text())["annotations"])
    data = [f"data.train_ann={split['fit']}", f"data.val_ann={split['probe']}",
            f"data.train_images={LSPET / 'images'}", f"data.val_images={LSPET / 'images'}",
            "trainer.progress_bar=false"]
    results: dict[str, list[dict]] = {}
    # seed by seed, each pretext followed at once by its probes: a finished seed is a complete comparison
    for seed in args.seeds:
        for steps in args.pretrain_steps:
            for name in args.variants:
                run = pretrain(out, name, seed, data, steps, fit_persons, args)
                if run is None or args.phase == "pretrain":
                    continue
                pre = json.loads((run / "pretext_metrics.json").read_text())
                # the classification jigsaw's head is a classifier: only its backbone transfers
                for transfer in ["backbone"] if "task=jigsaw_cls" in VARIANTS[name] else args.transfer:
                    m = probe(out, name, seed, str(run / "network.safetensors"), transfer, data, args, fit_persons,
                              f"pre{steps}")
                    if m is not None:
                        results.setdefault(f"{name} {steps} {transfer}", []).append({"seed": seed, "pretext": pre, "probe": m})
                if not any(r["seed"] == seed for r in results.get("scratch", [])):
                    scratch = probe(out, "scratch", seed, "scratch", "backbone", data, args, fit_persons, "scratch")
                    if scratch is not None:
                        results.setdefault("scratch", []).append({"seed": seed, "probe": scratch})
                atomic_write_json(out / "ablation.json", {"args": vars(args), "results": results})
                atomic_write_text(out / "ablation.md", table(results) + "\n")
                plot(results, out / "ablation.png")
    if results:
        print(table(results))


def table(results: dict[str, list[dict]]) -> str:
    """Mean ± std over seeds; the pretext metric is placement (heatmap) or permutation (classification)
    accuracy. The last column pairs each run with the scratch probe of its own seed (same labelled
    persons, same data order), which cancels part of the seed-to-seed spread: one value per seed."""
    def stat(values: list[float]) -> str:
        return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}" if len(values) > 1 else f"{100 * values[0]:.1f}"

    scratch = {r["seed"]: r["probe"]["PCK@0.1"] for r in results.get("scratch", [])}
    lines = ["| variant (pretext steps, transfer) | seeds | pretext acc (chance) | probe PCK@0.1 | probe AP "
             "| PCK@0.1 minus same-seed scratch |", "|---|---|---|---|---|---|"]
    for name, runs in sorted(results.items(), key=lambda item: item[0] != "scratch"):
        pre = [r["pretext"] for r in runs if "pretext" in r]
        acc = "-"
        if pre:
            key = "placement_acc" if "chance_placement_acc" in pre[0] else "permutation_acc"
            acc = f"{stat([q[key] for q in pre])} ({100 * pre[0]['chance_' + key]:.1f})"
        paired = ", ".join(f"{100 * (r['probe']['PCK@0.1'] - scratch[r['seed']]):+.1f}" for r in runs
                           if r["seed"] in scratch) if name != "scratch" else "-"
        lines.append(f"| {name} | {', '.join(str(r['seed']) for r in runs)} | {acc} | "
                     f"{stat([r['probe']['PCK@0.1'] for r in runs])} | {stat([r['probe']['AP'] for r in runs])} "
                     f"| {paired or '-'} |")
    return "\n".join(lines)


def plot(results: dict[str, list[dict]], png: Path) -> Path:
    """Probe PCK@0.1 per variant, one marker per seed, each seed's scratch probe as a line of its colour:
    whether a variant beats scratch for every seed is what the eye should catch."""
    import matplotlib.pyplot as plt

    from hsjp.viz import save_figure

    names = [n for n in results if n != "scratch"]
    seeds = sorted({r["seed"] for runs in results.values() for r in runs})
    colors = {s: f"C{i}" for i, s in enumerate(seeds)}
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 3.6))
    for r in results.get("scratch", []):
        ax.axhline(100 * r["probe"]["PCK@0.1"], color=colors[r["seed"]], ls="--", lw=1, label=f"scratch, seed {r['seed']}")
    for x, name in enumerate(names):
        for r in results[name]:
            ax.plot(x + 0.08 * (seeds.index(r["seed"]) - (len(seeds) - 1) / 2), 100 * r["probe"]["PCK@0.1"], "o",
                    color=colors[r["seed"]])
    ax.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=8)
    ax.set_ylabel("probe PCK@0.1 (%)")
    ax.set_title("finetune probe from each pretext (dots: seeds; dashed: scratch of that seed)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, png)


if __name__ == "__main__":
    main()
