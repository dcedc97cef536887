"""Which files of a pipeline or of one diffusers model the engine reads, in the engine's errors.

``files.select_files`` is the one rule (shared with the preferences' Download, standard library
only); here it raises ``EngineError``s. Pickle-based weights (``.ckpt .bin .pt .pth``) can execute
code when loaded and are refused (``pickle_refusal``) unless the caller allows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import EngineError, ModelNotFoundError, UnsafeModelFormatError
from .files import WEIGHT, WEIGHT_INDEX, FileSelection, FileSelectionError
from .files import select_files as _select_files

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
MODEL_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


def pickle_refusal(what: str) -> UnsafeModelFormatError:
    return UnsafeModelFormatError(
        f"{what} is stored in a pickle format (.ckpt/.bin/.pt/.pth), which can run arbitrary code on this "
        "computer when loaded; use a .safetensors version of the model, or allow pickle weights in the "
        "preferences only for files you trust."
    )


def pick_weights_file(names: Iterable[str], where: str, *, what: str, allow_pickle: bool,
                      preferred: str | None = None) -> str:
    """The one weights file of a ``what`` (a LoRA, an IP-Adapter) among a folder's/repo's file names: at the top
    level, ``preferred`` first, else the only ``.safetensors``; a pickle only when allowed and alone."""
    top = [n for n in names if "/" not in n]
    safe = sorted(n for n in top if n.lower().endswith(".safetensors"))
    if preferred in safe:
        return preferred
    if len(safe) == 1:
        return safe[0]
    if len(safe) > 1:
        raise EngineError(
            f"{where} holds several .safetensors files ({', '.join(safe[:4])}); download the {what} you want "
            "and choose that file."
        )
    pickled = sorted(n for n in top if n.lower().endswith(PICKLE_SUFFIXES))
    if pickled and not allow_pickle:
        raise pickle_refusal(f"The {what} in {where}")
    if len(pickled) == 1:
        return pickled[0]
    raise ModelNotFoundError(f"{where} has no {what} weights file (.safetensors) at its top level.")


def select_files(
    filenames: Iterable[str],
    index: dict[str, Any],
    *,
    name: str,
    prefer_variant: str | None,
    allow_pickle: bool,
) -> FileSelection:
    """``files.select_files`` (the one rule, shared with the preferences' Download), with the engine's errors."""
    try:
        return _select_files(filenames, index, name=name, prefer_variant=prefer_variant, allow_pickle=allow_pickle)
    except FileSelectionError as error:
        if error.kind == "pickle":
            raise pickle_refusal(f"The {error.component} of {name}") from None
        if error.kind == "no_weights":
            raise ModelNotFoundError(str(error)) from None
        raise EngineError(str(error)) from None


def folder_listing(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def select_model_files(
    filenames: Iterable[str],
    *,
    name: str,
    prefer_variant: str | None,
    allow_pickle: bool,
) -> FileSelection:
    """The files of one diffusers *model* (not a pipeline) at a repo's/folder's top level: ``config.json``
    and one set of weights (safetensors first; pickle only when allowed; ``prefer_variant`` when present)."""
    top = [f for f in filenames if "/" not in f.replace("\\", "/")]
    if "config.json" not in top:
        raise EngineError(f"{name} is not a diffusers model (it has no config.json at its top level).")
    found: dict[str, dict[str | None, list[str]]] = {}
    for f in top:
        match = WEIGHT.fullmatch(f)
        if match and match["base"] == "diffusion_pytorch_model":
            found.setdefault(match["ext"], {}).setdefault(match["variant"], []).append(f)
    if not found:
        raise ModelNotFoundError(f"{name} has no PyTorch weights; download it again or choose another model.")
    if "safetensors" in found:
        ext = "safetensors"
    elif not allow_pickle:
        raise pickle_refusal(name)
    else:
        ext = next(e for e in ("bin", "pt", "pth", "ckpt") if e in found)
    variants = found[ext]
    variant = prefer_variant if prefer_variant in variants else (None if None in variants else sorted(variants)[0])
    chosen = ["config.json", *sorted(variants[variant])]
    for f in top:
        match = WEIGHT_INDEX.fullmatch(f)
        if match and match["ext"] == ext and match["variant"] == variant:
            chosen.append(f)
    return FileSelection(tuple(chosen), variant)
