"""--device auto|cpu|cuda: auto picks CUDA when present."""

from __future__ import annotations

from .errors import UserError
from .options import DEVICES


def resolve_device(name: str = "auto"):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
        return torch.device(name)
    raise UserError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")
