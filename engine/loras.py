"""LoRAs: where a ``LoraSpec.source`` points, which family it was trained for, its recipe entry.

A source is a local ``.safetensors`` file (``.ckpt/.pt/.bin`` only when pickles are allowed),
a folder holding one LoRA file, or a Hugging Face repo id (its LoRA ``.safetensors`` is
downloaded with progress unless offline). The weights are read here into a state dict and
handed to diffusers' ``load_lora_weights`` (through peft), so diffusers never goes online.

The family is read from the tensors, never from the name: a LoRA's cross-attention key
projections (``attn2.to_k``) take the text features, 768 wide for SD 1.x, 1024 for SD 2.x and
2048 for SDXL.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import file_selection, hub, sources
from .errors import EngineError, ModelNotFoundError
from .families import CROSS_ATTENTION_WIDTHS
from .files import is_repo_id

PREFERRED_FILE = "pytorch_lora_weights.safetensors"  # what diffusers' save_lora_weights writes
_DOWN = re.compile(r"(lora_down|lora_A|lora\.down)(\.[A-Za-z0-9_]+)?\.weight$")
_hash_cache: dict[tuple[str, int, int, int, int], str] = {}


@dataclass(frozen=True)
class LoraFile:
    """A resolved LoRA: the weights file and how the recipe names it."""

    path: Path
    name: str  # the file name, or the repo id
    repo_id: str | None = None

    def recipe(self, weight: float) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "weight": float(weight)}
        if self.repo_id is not None:
            entry["repo_id"] = self.repo_id
            entry["file"] = self.path.name
        else:
            entry["sha256"] = file_sha256(self.path)
        return entry


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered while the file is unchanged: the same path, size, inode, modification and
    status-change times (a file written again, or replaced by another, gets a new ctime or inode even where a
    trainer keeps the size and sets the modification time back)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)
    digest = _hash_cache.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        digest = _hash_cache[key] = sha.hexdigest()
    return digest


def _pick_file(names: list[str], where: str, allow_pickle: bool) -> str:
    """The LoRA file among a repo's/folder's top-level file names."""
    return file_selection.pick_weights_file(names, where, what="LoRA", allow_pickle=allow_pickle,
                                            preferred=PREFERRED_FILE)


def resolve(
    source: str,
    *,
    allow_pickle: bool,
    cache_dir: str | None,
    offline: bool,
    read_cache_dirs: tuple[str, ...] | None = None,
    on_progress: Any = None,
    cancel_event: threading.Event | None = None,
) -> LoraFile:
    """Find (download) the LoRA file for ``source``."""
    text = source.strip()
    path = Path(os.path.expanduser(text))
    suffix = path.suffix.lower()
    if suffix in file_selection.PICKLE_SUFFIXES and not allow_pickle:
        raise file_selection.pickle_refusal(f"The LoRA {path.name}")
    if path.is_dir():
        names = [p.name for p in path.iterdir() if p.is_file()]
        return LoraFile(path.resolve() / _pick_file(names, str(path), allow_pickle), path.name)
    if path.is_file():
        if suffix not in file_selection.MODEL_FILE_SUFFIXES:
            raise ModelNotFoundError(f"{path.name} is not a LoRA file; choose a .safetensors file or a repo id.")
        return LoraFile(path.resolve(), path.name)
    if sources.looks_like_path(text) or not is_repo_id(text):
        raise ModelNotFoundError(
            f"There is no LoRA file at {path}; check the path (Blender-relative '//' paths must be made absolute), "
            "or give a Hugging Face repo id such as 'org/name'."
        )
    chosen: list[str] = []

    def select(names: list[str]) -> list[str]:
        chosen[:] = [_pick_file(names, text, allow_pickle)]
        return chosen

    folder = hub.resolve_hub_files(
        text,
        select,
        cache_dir=cache_dir,
        offline=offline,
        read_cache_dirs=read_cache_dirs,
        on_progress=on_progress,
        cancel_event=cancel_event,
    )
    name = chosen[0] if chosen else _pick_file(file_selection.folder_listing(folder), text, allow_pickle)
    return LoraFile(folder / name, text, repo_id=text)


def read_state_dict(lora: LoraFile) -> dict[str, Any]:
    """The LoRA's tensors (safetensors; pickles only reach here when allowed, loaded weights-only)."""
    if lora.path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(lora.path))
    import torch

    state = torch.load(str(lora.path), map_location="cpu", weights_only=True)
    return dict(state.get("state_dict", state)) if isinstance(state, dict) else state


def text_width(state_dict: dict[str, Any]) -> int | None:
    """The text-feature width the LoRA was trained on (its cross-attention key projection's input), or None."""
    for key, tensor in state_dict.items():
        if ("attn2" in key and ("to_k" in key or "k_proj" in key)) and _DOWN.search(key) and tensor.ndim == 2:
            return int(tensor.shape[1])
    return None


def family_of_width(width: int) -> str:
    """``SD1``/``SD2``/``SDXL`` for the widths of real models, else a description."""
    return CROSS_ATTENTION_WIDTHS.get(width, f"a model with {width}-wide text features")


def check_family(state_dict: dict[str, Any], unet_width: int, model_family: str, name: str, field: str) -> None:
    """Refuse a LoRA trained for another family (its cross-attention width differs from the UNet's).

    Raises:
        EngineError: naming both families and the request field (``loras[i]``).
    """
    width = text_width(state_dict)
    if width is not None and width != unet_width:
        raise EngineError(
            f"{field}: the LoRA {name} is for {family_of_width(width)} (text features {width} wide), but the model is "
            f"{model_family} ({unet_width} wide); choose a LoRA made for {model_family} models."
        )
