"""Run configuration: typed defaults, YAML files and ``key=value`` command-line overrides.

Every field of every run lives in :class:`Config`; a YAML file only states what differs from the
defaults, and ``section.field=value`` arguments override either. The fully resolved config is
saved next to each run's outputs, so a figure can always be traced to the exact settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hsjp.errors import ConfigError
from hsjp.io import atomic_write_text

CONFIG_DIR = Path(__file__).parent / "configs"
TASKS = ("pose", "jigsaw", "jigsaw_cls")
PRETEXT_TASKS = ("jigsaw", "jigsaw_cls")  # label-free: trained on crops alone, exported for ``model.init``


@dataclass
class ModelConfig:
    arch: str = "resnet18"
    # 'scratch' (Kaiming), 'imagenet' (timm weights, needs the network) or a path to a weights file
    init: str = "scratch"
    deconv_channels: int = 256
    # what a pretrained weights file (``init`` = a path) fills: 'backbone', or 'network' = everything
    # but the final 1x1 conv (for SimpleBaseline also the deconvolutions, which the pretext trained to
    # turn features into heatmap peaks; for HRNet the same as 'backbone'). 'network' is the default
    # because it beat 'backbone' for every grid and seed of the full-length ablation (RESULTS 13)
    transfer: str = "network"
    # keep BatchNorm layers on their running statistics while training (mmpose's norm_eval): per-sample
    # outputs then do not depend on the batch, the CPU answer to SyncBatchNorm for tiny per-device batches
    norm_eval: bool = False


@dataclass
class DataConfig:
    train_ann: str = ""
    train_images: str = ""
    val_ann: str = ""
    val_images: str = ""
    # pretraining may read every image of a folder instead, each whole image taken as the person box
    train_image_folder: str = ""
    input_size: list[int] = field(default_factory=lambda: [192, 256])  # w, h
    heatmap_stride: int = 4
    sigma: float = 2.0
    box_padding: float = 1.25
    # what fills a crop beyond the image: 'constant' (black, the official recipe), 'replicate' or 'reflect'.
    # Black bands are a jigsaw shortcut (a piece with a band belongs to the crop's edge), see RESULTS.md
    border: str = "constant"
    min_box_size: float = 8.0  # pretext crops: smaller person boxes are skipped
    label_fraction: float = 1.0  # finetune on this share of the labelled persons (seeded)
    batch_size: int = 32  # per device
    val_batch_size: int = 64
    num_workers: int = 2
    shuffle: bool = True
    oks_sigmas: Optional[list[float]] = None  # None: COCO's for 17 keypoints


@dataclass
class AugmentConfig:
    enabled: bool = True
    flip: bool = True
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    scale_factor: float = 0.35
    rotation: float = 45.0
    rotation_prob: float = 0.6


@dataclass
class JigsawConfig:
    grid: list[int] = field(default_factory=lambda: [4, 3])  # rows, cols
    sigma: float = 2.0
    allow_identity: bool = False
    gap: int = 0
    color_jitter: float = 0.0
    # 0: uniform (task jigsaw_cls: the set of min(100, K!-1)); N: a fixed maximal-Hamming set of N
    permutations: int = 0
    permutation_seed: int = 0


@dataclass
class TrainConfig:
    epochs: int = 140
    max_steps: int = -1  # >0 stops after this many optimiser steps, whatever ``epochs`` says
    lr: float = 1e-3
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=lambda: [90, 120])  # epochs
    gamma: float = 0.1
    # 'sum': squared error summed over heatmap pixels, averaged over persons and keypoints.
    # 'mean' (the official per-pixel mean) shrinks gradients by h*w and stalls Adam at small scale.
    loss_pixel_reduction: str = "sum"
    val_every_n_epochs: int = 10
    # as Lightning reads them: an integer is a number of batches, a float a share of the epoch (1.0: all)
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    flip_test: bool = True
    max_skipped_fraction: float = 0.01
    channels_last: bool = False
    seed: int = 0
    resume: bool = True
    # also save checkpoints/last.ckpt every N optimiser steps (0: at epoch ends only), so that a crash
    # loses at most N steps: 250 is 2-4 minutes of the CPU configs at ~1-2 steps/s, for a ~1 s save of
    # ResNet-18 + Adam (185 MB); see benchmarks/RESULTS.md. GPU runs may want more
    checkpoint_every_n_steps: int = 250


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    # Lightning's (32-true, bf16-mixed, 16-mixed, ...) or 'auto': bf16-mixed where the hardware computes
    # bf16 natively, else 32-true (hsjp.training.precision); the saved config holds the resolved one
    precision: str = "32-true"
    strategy: str = "auto"
    sync_batchnorm: bool = False
    log_every_n_steps: int = 20
    progress_bar: bool = True
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default


@dataclass
class Config:
    # 'pose' (finetune on keypoints), 'jigsaw' (HSJP pretext) or 'jigsaw_cls' (classification jigsaw:
    # the permutation's index from pooled features, Noroozi & Favaro 2016; the HSJP paper's baseline)
    task: str = "pose"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    jigsaw: JigsawConfig = field(default_factory=JigsawConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        w, h = self.data.input_size
        s = self.data.heatmap_stride
        return w // s, h // s


def resolve_config_path(name: str) -> Path:
    """A path as given, or the name of a config shipped with hsjp (with or without ``.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file():
        return shipped
    choices = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config {name!r} is neither a file nor a shipped config (shipped: {choices})")


def load_config(name: str | None = None, overrides: list[str] | None = None, schema: type = Config) -> Any:
    """Defaults of ``schema``, then the YAML file ``name``, then ``section.field=value`` overrides."""
    try:
        merged = OmegaConf.structured(schema)
        if name:
            path = resolve_config_path(name)
            try:
                merged = OmegaConf.merge(merged, OmegaConf.load(path))
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
        for override in overrides or []:
            if "=" not in override:
                raise ConfigError(f"override {override!r} is not of the form section.field=value")
            # 'key=' means an empty value (OmegaConf would read None, which str fields refuse)
            try:
                value = OmegaConf.from_dotlist([override + "''" if override.endswith("=") else override])
            except yaml.YAMLError as e:
                raise ConfigError(f"override {override!r}: its value is not valid YAML ({_yaml_problem(e, False)})") from None
            merged = OmegaConf.merge(merged, value)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        where = f"config {name!r}" if name else "config"
        key = getattr(e, "full_key", None)
        raise ConfigError(f"{where}: {f'{key}: ' if key else ''}{str(e).splitlines()[0]}") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"config {name!r}: {e}") from None


def _yaml_problem(e: yaml.YAMLError, line: bool = True) -> str:
    """PyYAML's problem (and its line in a file), without the multi-line context it prints."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}" if line and mark is not None else problem


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def from_dict(data: dict, schema: type = Config) -> Any:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))


def save_config(cfg: Any, path: str | Path) -> Path:
    return atomic_write_text(path, to_yaml(cfg))
