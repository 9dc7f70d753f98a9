"""Backbone weights in and out: safetensors export of a pretext backbone, and checked loading.

Loading says what it filled. A file that fills less than 95 % of the backbone's tensors (another
architecture, a head-only file, a typo'd path to the wrong run) is refused rather than silently
leaving most of the network random.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from hsjp.errors import CheckpointError, brief
from hsjp.io import atomic_write_bytes

MIN_FILLED = 0.95
_PREFIXES = ("model.backbone.", "backbone.", "module.", "model.")


@dataclass
class LoadReport:
    path: str
    filled: int
    total: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.filled / max(self.total, 1)

    def summary(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [f"{self.path}: filled {self.filled}/{self.total} backbone tensors ({100 * self.fraction:.1f}%)"]
        for name, keys in (("missing", self.missing), ("shape-mismatched", self.mismatched),
                           ("unexpected", self.unexpected)):
            if keys:
                parts.append(f"{len(keys)} {name}: {few(keys)}")
        return "; ".join(parts)


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata from a safetensors file, a Lightning checkpoint or a torch state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            return load_file(str(path)), meta
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors for a bad file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({brief(e)})") from None
    meta = {}
    if isinstance(obj, dict) and "state_dict" in obj:
        meta = {"hyper_parameters": json.dumps(obj.get("hyper_parameters", {}), default=str)}
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: holds no tensor state dict")
    return obj, meta


def _strip(key: str) -> str:
    for p in _PREFIXES:
        if key.startswith(p):
            return key[len(p):]
    return key


def match_backbone(backbone: torch.nn.Module, state: dict[str, torch.Tensor], path: str) -> tuple[dict, LoadReport]:
    """The subset of ``state`` that fits ``backbone``, and a report of what fits and what doesn't."""
    own = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    # a Lightning checkpoint of a whole PoseNet also holds the head: only backbone keys are candidates
    if any(k.startswith(("model.backbone.", "backbone.")) for k in state):
        state = {k: v for k, v in state.items() if k.startswith(("model.backbone.", "backbone."))}
    theirs = {_strip(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    fitting = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    report = LoadReport(
        path=str(path), filled=len(fitting), total=len(own),
        missing=sorted(k for k in own if k not in theirs),
        unexpected=sorted(k for k in theirs if k not in own),
        mismatched=sorted(f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}"
                          for k in own if k in theirs and own[k].shape != theirs[k].shape),
    )
    return fitting, report


def load_backbone_weights(model: torch.nn.Module, path: str | Path) -> LoadReport:
    """Fill ``model.backbone`` from ``path``; refuse files that fill under 95 % of it."""
    state, _ = read_state_dict(path)
    fitting, report = match_backbone(model.backbone, state, str(path))
    if report.fraction < MIN_FILLED:
        raise CheckpointError(f"refusing weights that do not fit backbone {getattr(model, 'arch', '?')}: {report.summary()}")
    model.backbone.load_state_dict(fitting, strict=False)
    model.load_report = report
    return report


def export_backbone(model: torch.nn.Module, path: str | Path, metadata: dict[str, object]) -> Path:
    """Write the backbone's tensors, unprefixed, with string metadata, atomically."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.backbone.state_dict().items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return atomic_write_bytes(path, save(tensors, metadata=meta))
