"""Where, in what precision and in how much memory the fine-tune runs: ``--device auto|cpu|cuda``,
``--precision auto|bf16|fp32`` and ``--checkpointing auto|on|off``.

bfloat16 autocast runs on a GPU and on CPUs that multiply bfloat16 natively (``avx512_bf16`` or
``amx_bf16``); elsewhere oneDNN would emulate it, slower than fp32, so ``auto`` means fp32 there.
Weights, optimizer state and the loss stay fp32 either way. On a 2-core AMD EPYC with avx512_bf16 a
6-layer step took 4.7 s in bfloat16 against 8.5 s in fp32 (8 batches of 32).

Activation checkpointing keeps only each layer's input for the backward pass and recomputes the rest:
the same gradients (dropout's random state is replayed), a fraction of the memory. ``auto`` turns it on
when the activations of the longest batch are estimated (``ACTIVATION_BYTES`` per batch × tokens ×
hidden × layers, measured on EmbeddingGemma) to take more than a quarter of this machine's memory: the
24-layer EmbeddingGemma at 32 × 256 tokens peaked at 12–16 GB without it (one run was killed for memory
on a 24 GB machine) and 4–5 GB with it, at the same step time on a 2-core Xeon; e5-small's 12 narrow
layers need no checkpointing there.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


class FitError(ValueError):
    pass


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FitError(f"--device {name}: no CUDA device is available here")
    return torch.device(name)


PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (on others oneDNN emulates it, slower than fp32)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(name: str, device: torch.device) -> str:
    """``bf16`` or ``fp32``: what the forward passes of this run use."""
    if name not in PRECISIONS:
        raise FitError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name != "auto":
        return name
    return "bf16" if device.type == "cuda" or cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


CHECKPOINTING = ("auto", "on", "off")
ACTIVATION_BYTES = 100  # measured: 12–16 GB for 32 × 256 tokens × 768 hidden × 24 layers, bf16 autocast


def machine_memory() -> int:
    """This machine's physical memory in bytes (0 where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def choose_checkpointing(name: str, batch_size: int, tokens: int, hidden: int, layers: int,
                         memory: int | None = None) -> bool:
    """Whether to checkpoint activations: ``on``/``off``, or ``auto`` by the estimate in the docstring."""
    if name not in CHECKPOINTING:
        raise FitError(f"--checkpointing must be one of {', '.join(CHECKPOINTING)}, got {name!r}")
    if name != "auto":
        return name == "on"
    memory = machine_memory() if memory is None else memory
    return memory > 0 and batch_size * tokens * hidden * layers * ACTIVATION_BYTES > memory / 4
