"""Pictures: learning curves, keypoints on images, puzzles and their heatmaps.

Every figure is written atomically through :func:`save_figure`, so a killed run never leaves a
truncated PNG behind.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hsjp.io import atomic_write_bytes  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _metric_rows(path: Path):
    """Rows of one CSVLogger file, or of all parts of a resumed run's log folder in order."""
    files = [path] if path.is_file() else [*sorted(path.glob("metrics-part*.csv")), path / "metrics.csv"]
    for file in files:
        if file.is_file():
            with open(file, newline="") as f:
                yield from csv.DictReader(f)


def read_metrics_csv(path: str | Path, val_x: str = "epoch") -> dict[str, list[tuple[float, float]]]:
    """Lightning's CSVLogger output (a file or a run's log folder) as {metric: [(x, value), ...]}.

    Training metrics are keyed by step; validation metrics (``val/...``) by completed epochs, the
    axis a reader compares one recipe's runs on, or with ``val_x='step'`` by optimiser steps, the
    axis that compares runs whose epochs differ in length (label budgets, equal-compute arms).
    """
    series: dict[str, list[tuple[float, float]]] = {}
    for row in _metric_rows(Path(path)):
        for key, value in row.items():
            if key in ("epoch", "step") or value in ("", None):
                continue
            by_epoch = key.startswith("val/") and val_x == "epoch"
            x = row["epoch"] if by_epoch else row["step"]
            if x in ("", None):
                continue
            series.setdefault(key, []).append((float(x) + 1, float(value)))
    return series


def plot_learning_curves(csv_path: str | Path, png: str | Path, title: str = "") -> Path:
    """Training loss against step; validation loss and metrics against epoch."""
    series = read_metrics_csv(csv_path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    trained = [k for k in series if k.startswith("train/")]  # none when a run is shorter than one log interval
    for key in trained:
        xs, ys = zip(*series[key])
        axes[0].plot(xs, ys, label=key)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss")
    if trained:
        axes[0].set_yscale("log")
        axes[0].legend()
    shown = [k for k in series if k.startswith("val/") and k != "val/loss"
             and not k.endswith(("APM", "APL", "AR50", "AR75", "ARM", "ARL", "AP50", "AP75"))]
    for key in shown:
        xs, ys = zip(*series[key])
        axes[1].plot(xs, ys, marker="o", label=key)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation metric")
    if "val/loss" in series:
        twin = axes[1].twinx()
        xs, ys = zip(*series["val/loss"])
        twin.plot(xs, ys, "k--", alpha=0.5, label="val/loss (right axis)")
        twin.set_ylabel("validation loss")
        twin.legend(loc="lower right", fontsize=8)
    if shown:
        axes[1].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, png)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, skeleton: list[list[int]] | None = None,
                   thr: float = 0.2, color: tuple[int, int, int] = (255, 64, 64), inplace: bool = False) -> np.ndarray:
    """RGB image with keypoints (K, 3: x, y, score or visibility) above ``thr`` and their limbs, all in
    ``color``, so two skeletons drawn on one image (prediction and ground truth) stay apart.
    ``inplace`` draws on ``image`` itself, for callers drawing many persons on one copy."""
    out = image if inplace else image.copy()
    r = max(2, round(min(out.shape[:2]) / 120))
    ok = keypoints[:, 2] > thr
    for a, b in skeleton or []:
        a, b = a - 1, b - 1  # COCO skeletons are 1-based
        if a < len(keypoints) and b < len(keypoints) and ok[a] and ok[b]:
            cv2.line(out, tuple(int(v) for v in keypoints[a, :2]), tuple(int(v) for v in keypoints[b, :2]),
                     color, max(1, r // 2), cv2.LINE_AA)
    for x, y, _ in keypoints[ok]:
        cv2.circle(out, (int(x), int(y)), r, color, -1, cv2.LINE_AA)
    return out


def plot_predictions(results: list[dict], anns, png: str | Path, n: int = 8) -> Path:
    """The ``n`` highest-scoring predicted persons on their images: prediction red, ground truth green.

    Each panel is the person's box with a margin, so small people stay visible; the panel title gives
    the result's score and the image id, to find it in ``keypoints_results.json``.
    """
    from hsjp.data.crops import read_image

    chosen = sorted(results, key=lambda r: -r["score"])[:n]
    cols = min(4, max(1, len(chosen)))
    rows = max(1, -(-len(chosen) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, chosen):
        image = read_image(anns.image_path(r["image_id"]))
        pred = np.asarray(r["keypoints"], np.float32).reshape(-1, 3)
        gts = [a for a in anns.coco.imgToAnns[r["image_id"]] if a.get("num_keypoints", 0) > 0]
        for a in gts:
            image = draw_keypoints(image, np.asarray(a["keypoints"], np.float32).reshape(-1, 3), anns.skeleton,
                                   thr=0, color=(64, 220, 64))
        image = draw_keypoints(image, pred, anns.skeleton)
        labelled = pred[:, 2] > 0.2
        pts = pred[labelled, :2] if labelled.any() else pred[:, :2]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        m = 0.25 * max(hi - lo) + 10
        x0, y0 = (int(max(0, v)) for v in lo - m)
        x1, y1 = int(min(image.shape[1], hi[0] + m)), int(min(image.shape[0], hi[1] + m))
        ax.imshow(image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])
        ax.set_title(f"image {r['image_id']}, score {r['score']:.2f}", fontsize=8)
    fig.suptitle("predicted keypoints (red) and ground truth (green)")
    return save_figure(fig, png)


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """The image darkened, with the max over channels of ``heatmaps`` (K, h, w) in colour on top."""
    peak = np.clip(heatmaps.max(axis=0), 0, 1)
    peak = cv2.resize(peak, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = (plt.get_cmap("inferno")(peak)[..., :3] * 255).astype(np.float32)
    return np.clip(0.45 * image + 0.75 * colour, 0, 255).astype(np.uint8)


def plot_experiment_curves(records: list[dict], out: str | Path) -> list[Path]:
    """Validation AP and PCK against epoch for every arm, and the pretext's placement accuracy."""
    out = Path(out)
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in records:
        if r.get("status") != "done":
            continue
        csv_path = Path(r["dir"]) / "train" / "logs"
        if not csv_path.is_dir():
            continue
        series = read_metrics_csv(csv_path, val_x="step")
        label = f"{r['arm']} (labels {r['label_fraction']:g}, seed {r['seed']})"
        for ax, key in zip(axes, ("val/AP", "val/PCK@0.1")):
            if key in series:
                xs, ys = zip(*series[key])
                ax.plot(xs, ys, marker="o", label=label)
    for ax, name in zip(axes, ("OKS AP", "PCK@0.1")):
        ax.set_xlabel("finetune optimiser step")
        ax.set_ylabel(f"validation {name}")
        if ax.lines:  # a report read before any arm finished has no curve to name
            ax.legend(fontsize=7)
    written.append(save_figure(fig, out / "curves_finetune.png"))
    pre = sorted(out.glob("pretrain*/seed*/logs"))
    if pre:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for csv_path in pre:
            series = read_metrics_csv(csv_path)
            if "val/placement_acc" in series:
                xs, ys = zip(*series["val/placement_acc"])
                ax.plot(xs, ys, marker="o", label=f"{csv_path.parent.parent.name} {csv_path.parent.name}")
        ax.set_xlabel("pretrain epoch")
        ax.set_ylabel("held-out placement accuracy")
        ax.legend()
        written.append(save_figure(fig, out / "curves_pretext.png"))
    return written


def plot_label_efficiency(rows: list[dict], png: str | Path) -> Path:
    """AP and PCK@0.1 against label fraction (log axis), one line per arm, seed spread as error bars.

    Drawn for the first evaluation set of the summary rows: the curve a user reads to decide whether
    a pretrain pays at their label budget.
    """
    done = [r for r in rows if r.get("status") != "not run"]
    eval_set = done[0]["eval_set"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for arm in dict.fromkeys(r["arm"] for r in done):
        mine = sorted((r for r in done if r["arm"] == arm and r["eval_set"] == eval_set), key=lambda r: r["label_fraction"])
        for ax, key in zip(axes, ("AP", "PCK@0.1")):
            pts = [r for r in mine if key in r]
            if pts:
                ax.errorbar([r["label_fraction"] for r in pts], [100 * r[key] for r in pts],
                            yerr=[100 * r[f"{key}_std"] for r in pts], marker="o", capsize=3,
                            label=f"{arm} (seeds: {', '.join(str(r['seeds']) for r in pts)})")
    for ax, name in zip(axes, ("OKS AP (%)", "PCK@0.1 (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("share of labelled training persons")
        ax.set_ylabel(f"{eval_set} {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, png)
