"""The floating-point precision a run trains in, where the config leaves it to the hardware.

bf16 autocast (with channels_last) trained the CPU configs up to 3x faster than fp32 on CPUs that
compute bf16 natively (AVX512_BF16 or AMX), and about 23x *slower* on a CPU with AVX2 only, where
oneDNN emulates it (benchmarks/RESULTS.md section 15). No single setting is right for every machine,
so the shipped CPU configs say ``auto`` and a run resolves it here, before its trainer is built and
its config saved: the saved config then records what actually ran.
"""

from __future__ import annotations

import typing
from functools import cache

import torch

from hsjp.errors import ConfigError

AUTO = "auto"
_BF16 = ("bf16-mixed", "bf16-true", "bf16")


@cache
def precisions() -> tuple[str, ...]:
    """``auto`` and Lightning's own list (its aliases '32', 'bf16', ... included), read from the type
    it checks against, so that a value Lightning accepts is never refused here. Imported on first use:
    inference (``native_bf16``) runs without Lightning."""
    from lightning.fabric.connector import _PRECISION_INPUT

    return tuple(dict.fromkeys([AUTO, *(str(v) for args in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(args))]))


def native_bf16(on_cuda: bool) -> bool:
    """Whether the device the run trains on computes bf16 in hardware rather than emulating it."""
    if on_cuda:
        return torch.cuda.is_bf16_supported()
    # private to torch.cpu (present since 2.2); a torch without them gets fp32, slower at worst, never 20x
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(precision: str, on_cuda: bool) -> str:
    """``auto``: bf16-mixed where the hardware has bf16, else 32-true; any other value Lightning knows as
    given. An unknown one is refused here, before a trainer is built, where Lightning would answer
    with a traceback from inside its connector."""
    if precision not in precisions():
        raise ConfigError(f"trainer.precision={precision!r} is not a precision; choose one of {', '.join(precisions())}")
    if precision != AUTO:
        return precision
    return "bf16-mixed" if native_bf16(on_cuda) else "32-true"


def slow_precision_warning(precision: str, on_cuda: bool) -> str | None:
    """One line for a user who asked for bf16 on a CPU that emulates it: the run works, but at a
    small fraction of fp32's speed, which looks like a hang rather than a setting."""
    if precision in _BF16 and not on_cuda and not native_bf16(on_cuda):
        return (f"warning: trainer.precision={precision} on a CPU without AVX512_BF16 or AMX: bf16 is emulated "
                "there, about 20x slower than 32-true; trainer.precision=auto picks the faster one")
    return None
