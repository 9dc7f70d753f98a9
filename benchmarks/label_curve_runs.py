"""Add runs made outside ``hsjp experiment`` to a label experiment's table and picture.

Used for the shipped 9,000-step pretext (RESULTS 13.6, 13.7): the label experiment's own hsjp
finetunes (each seed's resolved ``train/config.yaml``) re-run with only ``model.init`` swapped to a
9,000-step pretext, plus runs the experiment's plan did not have (scratch with all labels, seed 1).
Each ``--run ARM:FRACTION:SEED:DIR`` names a folder holding ``train/`` (the finetune, its validation
curve in ``train/logs``) and ``eval/metrics.json`` (``hsjp evaluate`` on the experiment's eval set,
as the experiment scores its arms). They join the experiment's finished arms as extra records, and
the experiment's own summary, table, "steps to scratch's final PCK" column and picture are drawn
from the union. OUT.json keeps every record of the union under ``arms``, each with its validation
curve, so that a later report can take them back: ``--records FILE`` adds the records an earlier
report kept (its ``arms``, and ``added`` in reports written before), for runs whose folders are gone; a run of the experiment or a ``--run`` replaces a kept
record of the same arm, label fraction and seed. ``--rename-arm OLD=NEW`` renames the experiment's
own arms (an experiment whose hsjp arm ran the 9,000-step pretext, say). Usage:

    python benchmarks/label_curve_runs.py --experiment /work/hsjp-runs/labels \\
        --run hsjp_9k:0.1:0:/work/hsjp-runs/len9k_lspet/seed0 --pretrain-steps hsjp_9k=9000 \\
        --out benchmarks/runs/label_efficiency_r18_9k --figure benchmarks/figures/label_efficiency_r18_9k.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hsjp.config import load_config
from hsjp.errors import HsjpError
from hsjp.experiment import (
    finished_records,
    load_experiment,
    markdown_table,
    planned_runs,
    provenance_note,
    summarise,
    val_pck_curve,
)
from hsjp.io import atomic_write_json, atomic_write_text
from hsjp.training.provenance import read_provenance
from hsjp.viz import plot_label_efficiency


def run_record(spec: str, eval_set: str, pretrain_steps: dict[str, int]) -> dict:
    """``ARM:FRACTION:SEED:DIR`` as the record ``hsjp experiment`` writes to ``done.json``."""
    parts = spec.split(":", 3)
    if len(parts) != 4:
        raise ValueError("expected ARM:FRACTION:SEED:DIR")
    arm, fraction, seed, folder = parts
    folder_path = Path(folder)
    train = json.loads((folder_path / "train" / "metrics.json").read_text())
    cfg = load_config(str(folder_path / "train" / "config.yaml"))
    if (cfg.data.label_fraction, cfg.train.seed) != (float(fraction), int(seed)):
        raise ValueError(f"its run trained on label fraction {cfg.data.label_fraction:g} with seed "
                         f"{cfg.train.seed}, not {fraction} and {seed}")
    return {"arm": arm, "label_fraction": float(fraction), "seed": int(seed), "dir": str(folder_path),
            "status": "done", "steps": train["global_step"], "pretrain_steps": pretrain_steps.get(arm, 0),
            "init": cfg.model.init, "val_curve": val_pck_curve(folder_path / "train"),
            "provenance": {"finetune": read_provenance(folder_path / "train")},
            "eval": {eval_set: json.loads((folder_path / "eval" / "metrics.json").read_text())}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", required=True, help="an hsjp experiment's --out (its experiment.yaml, arms/)")
    p.add_argument("--run", action="append", default=[], metavar="ARM:FRACTION:SEED:DIR")
    p.add_argument("--records", action="append", default=[], metavar="JSON",
                   help="an earlier report's JSON: its kept records (arms, added) join the table")
    p.add_argument("--rename-arm", nargs="*", default=[], metavar="OLD=NEW", help="rename the experiment's own arms")
    p.add_argument("--pretrain-steps", nargs="*", default=[], metavar="ARM=STEPS",
                   help="pretext steps behind an added arm, for the table's compute column")
    p.add_argument("--out", required=True, help="writes OUT.md and OUT.json")
    p.add_argument("--figure", required=True)
    args = p.parse_args(argv)

    exp_dir = Path(args.experiment)
    exp = load_experiment(str(exp_dir / "experiment.yaml"))
    eval_set = exp.eval_sets[0].name
    pretrain_steps = {arm: int(n) for arm, n in (s.split("=") for s in args.pretrain_steps)}
    added = []
    for spec in args.run:
        try:
            added.append(run_record(spec, eval_set, pretrain_steps))
        except (OSError, ValueError, HsjpError) as e:  # a malformed spec, or a folder without its metrics, config or eval
            raise SystemExit(f"label_curve_runs: --run {spec}: {e}") from None
    renamed = dict(s.split("=") for s in args.rename_arm)
    # records written before done.json kept the curve take it from their run folder while it exists
    records = [{**r, "arm": renamed.get(r["arm"], r["arm"]),
                "val_curve": r.get("val_curve") or val_pck_curve(Path(r["dir"]) / "train")}
               for r in finished_records(exp_dir, planned_runs(exp)) if r["status"] == "done"]
    records += added
    ran = {(r["arm"], r["label_fraction"], r["seed"]) for r in records}
    for path in args.records:
        try:
            kept = json.loads(Path(path).read_text())
            kept_records = kept.get("arms", []) + kept.get("added", [])
        except (OSError, ValueError, AttributeError) as e:  # unreadable, not JSON, or not a report's object
            raise SystemExit(f"label_curve_runs: --records {path}: not a report's JSON ({e})") from None
        for r in kept_records:
            key = (r["arm"], r["label_fraction"], r["seed"])
            if r.get("status") == "done" and key not in ran:
                records.append(r)
                ran.add(key)
    rows = sorted(summarise(records), key=lambda r: (r["label_fraction"], r["arm"] != "scratch", r["arm"]))
    for row in rows:  # summarise counts pretext steps for the experiment's own pretext arms only
        row["pretrain_steps"] = pretrain_steps.get(row["arm"], row.get("pretrain_steps", 0))
    plot_label_efficiency(rows, args.figure)
    table = markdown_table(rows)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".md"), f"# {exp_dir}: the experiment's finished arms plus added runs\n\n"
                      f"Command: `python {' '.join(sys.argv)}`\n\n{table}\n\n{provenance_note(records)}\n")
    atomic_write_json(out.with_suffix(".json"), {"command": " ".join(sys.argv), "rows": rows, "arms": records})
    print(table)


if __name__ == "__main__":
    main()
