"""Pretrained weights in and out: safetensors export of a pretext network, and checked loading.

Loading says what it filled, per part (backbone, and with ``model.transfer=network`` the head). A file that fills less than 95 % of the backbone's tensors (another
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

from hsjp.errors import CheckpointError, ConfigError, brief
from hsjp.io import atomic_write_bytes

MIN_FILLED = 0.95
TRANSFERS = ("backbone", "network")
_PREFIXES = ("model.backbone.", "backbone.", "module.", "model.")
_HEAD_PREFIXES = ("model.head.", "head.")


@dataclass
class LoadReport:
    """What one part of the network ('backbone' or 'head') took from a weights file."""

    path: str
    filled: int
    total: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    part: str = "backbone"

    @property
    def fraction(self) -> float:
        return self.filled / max(self.total, 1)

    def summary(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [f"{self.path}: filled {self.filled}/{self.total} {self.part} tensors ({100 * self.fraction:.1f}%)"]
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


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for p in prefixes:
        if key.startswith(p):
            return key[len(p):]
    return key


def backbone_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's tensors, unprefixed: a file of a whole network (an hsjp export or a Lightning
    checkpoint) names them ``backbone.*``; a bare timm / torch state dict is all backbone."""
    if any(k.startswith(("model.backbone.", "backbone.")) for k in state):
        state = {k: v for k, v in state.items() if k.startswith(("model.backbone.", "backbone."))}
    return {_strip(k, _PREFIXES): v for k, v in state.items()}


def head_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The head's tensors (``head.*`` or ``model.head.*``), unprefixed; empty for a backbone-only file."""
    return {_strip(k, _HEAD_PREFIXES): v for k, v in state.items() if k.startswith(_HEAD_PREFIXES)}


def transferable_head(model: torch.nn.Module) -> torch.nn.Module | None:
    """The head minus its final layer (SimpleBaseline's deconvolutions), or None where the head is
    only that layer (HRNet): the final layer's width is the task's (puzzle pieces vs keypoints)."""
    head = model.head
    if not isinstance(head, torch.nn.Sequential) or len(head) < 2:
        return None
    return head[:-1]


def without_final_layer(head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Sequential head's tensors without its last layer's (the task-specific 1x1 conv)."""
    layers = {int(k.split(".")[0]) for k in head if k.split(".")[0].isdigit()}
    return {k: v for k, v in head.items() if not layers or k.split(".")[0] != str(max(layers))}


def match_part(module: torch.nn.Module, theirs: dict[str, torch.Tensor], path: str,
               part: str = "backbone") -> tuple[dict, LoadReport]:
    """The subset of ``theirs`` (unprefixed) that fits ``module``, and a report of what fits and what doesn't."""
    own = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    theirs = {k: v for k, v in theirs.items() if not k.endswith("num_batches_tracked")}
    fitting = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    report = LoadReport(
        path=str(path), filled=len(fitting), total=len(own), part=part,
        missing=sorted(k for k in own if k not in theirs),
        unexpected=sorted(k for k in theirs if k not in own),
        mismatched=sorted(f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}"
                          for k in own if k in theirs and own[k].shape != theirs[k].shape),
    )
    return fitting, report


def load_pretrained(model: torch.nn.Module, path: str | Path, transfer: str = "network") -> list[LoadReport]:
    """Fill ``model`` from a pretrained file: its backbone, and with ``transfer='network'`` its head
    up to the final layer.

    The backbone must be filled to 95 % (another architecture, a head-only file or a wrong path is
    refused, not silently left random); the transferred head must fit exactly, since a head of
    another width has no partial meaning. Reports per part are kept on ``model.load_report``.
    """
    if transfer not in TRANSFERS:
        raise ConfigError(f"model.transfer must be one of {', '.join(TRANSFERS)}, not {transfer!r}")
    state, _ = read_state_dict(path)
    arch = getattr(model, "arch", "?")
    fitting, report = match_part(model.backbone, backbone_tensors(state), str(path))
    if report.fraction < MIN_FILLED:
        raise CheckpointError(f"refusing weights that do not fit backbone {arch}: {report.summary()}")
    loads, reports = [(model.backbone, fitting)], [report]
    head = transferable_head(model) if transfer == "network" else None
    if head is not None:
        theirs = head_tensors(state)
        if not theirs:
            raise CheckpointError(f"{path}: holds no head weights (a backbone-only file), so model.transfer=network "
                                  "has nothing to fill; use the pretrain's network.safetensors, or model.transfer=backbone "
                                  "(--transfer backbone) for a backbone-only file")
        fitting_head, head_report = match_part(head, without_final_layer(theirs), str(path), "head")
        if head_report.missing or head_report.mismatched:
            raise CheckpointError(f"refusing head weights that do not fit {arch}'s head: {head_report.summary()}")
        loads.append((head, fitting_head))
        reports.append(head_report)
    for module, tensors in loads:
        module.load_state_dict(tensors, strict=False)
    model.load_report = reports
    return reports


def export_network(model: torch.nn.Module, path: str | Path, metadata: dict[str, object],
                   with_head: bool = True) -> Path:
    """Write ``backbone.*`` (and ``head.*``) tensors with string metadata, atomically.

    The head goes with it so that ``model.transfer=network`` can reuse the pretext's deconvolutions;
    ``with_head=False`` for heads that fit no pose network (the classification jigsaw's MLP).
    """
    parts = {"backbone": model.backbone, **({"head": model.head} if with_head else {})}
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous().clone()
               for name, module in parts.items() for k, v in module.state_dict().items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return atomic_write_bytes(path, save(tensors, metadata=meta))
