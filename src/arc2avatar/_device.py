"""Choosing the torch device: one rule for every command."""

from __future__ import annotations

import torch

from arc2avatar.errors import InputError


def pick_device(name: str) -> torch.device:
    """"auto" → CUDA when available, else CPU; an explicit CUDA device that is not there is an
    ``InputError`` (one line), not a later crash."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available here (use --set device=cpu)")
    return device
