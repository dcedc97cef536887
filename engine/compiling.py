"""``torch.compile`` for the engine: the settings measured to pay, and a cache that outlives Blender.

Compiling an SD-1.5 UNet takes minutes on a CPU. torch keeps what it compiled
(inductor's FX graph cache and the AOTAutograd cache) in ``TORCHINDUCTOR_CACHE_DIR``;
pointing that at a folder the add-on owns (its user folder, not /tmp) makes every
later Blender start load the compiled code instead of compiling again. What a compiled
graph is keyed by is torch's own business and covers everything that changes the code:
the model's architecture (the traced graph), the image size and batch (static shapes,
one graph per size), the dtype, the compile options, the CPU's instruction set and the
torch version. The folder also carries the torch version in its name, so an upgrade
starts a fresh folder and the old one can simply be deleted. Weights are not part of
the key: with freezing they are constants read from the loaded model at run time, so
two fine-tunes of one architecture share the compiled code and still give their own
pictures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_options(device: torch.device) -> dict[str, Any]:
    """inductor options per device.

    CPU: ``freezing`` turns the weights into constants, so inductor pre-packs them for
    oneDNN once and fuses convolutions/linears with their element-wise neighbours: the
    part a profile of the eager bf16 UNet step says is left (bench/profile_unet.py:
    ~45 % of the time in element-wise ops, layout copies and norms, ~55 % in conv/matmul).
    Without freezing, compiling the UNet measured no faster than eager (fp32, issue 6).
    GPUs: torch's defaults (``bench/gpu.py`` measures max-autotune and CUDA graphs).
    """
    if device.type == "cpu":
        return {"freezing": True}
    return {}


def cache_folder(root: str | os.PathLike[str]) -> Path:
    """``root/torch-<version>``: one folder per torch version (its compiled code is useless to another)."""
    version = re.sub(r"[^0-9A-Za-z.+-]", "_", torch.__version__)
    return Path(root) / f"torch-{version}"


def use_cache_folder(root: str | os.PathLike[str] | None) -> Path | None:
    """Make inductor read and write its caches under ``cache_folder(root)`` (None: torch's default, /tmp).

    Process-wide (torch reads an environment variable); set before the first compile.
    """
    if root is None:
        return None
    folder = cache_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    if os.environ.get(CACHE_ENV) != str(folder):
        os.environ[CACHE_ENV] = str(folder)
        from torch._inductor.utils import clear_caches

        clear_caches()  # inductor memoises some paths under the old folder
    return folder


def compile_module(module: Any, device: torch.device) -> Any:
    """``torch.compile`` with static shapes: each image size gets its own graph, cached on its own."""
    return torch.compile(module, dynamic=False, options=compile_options(device) or None)
