"""IP-Adapters (reference images): from ``ReferenceSpec.model`` to the adapter file and its image encoder.

A source is resolved like every model (``hub.py``'s caches and offline rules, downloads with their size
reported before the first byte, pickles refused unless allowed, the revision recorded):

* ``""`` - the default of the loaded model's family (``DEFAULT_IP_ADAPTERS``), from ``h94/IP-Adapter``;
* a ``.safetensors`` file (``.bin`` only when pickles are allowed) - its image encoder is the
  ``image_encoder`` folder beside it (h94's layout; a ``*vit-h*`` file first looks in ``../models/``);
* a folder holding one adapter file (and the encoder beside it, as above);
* ``org/name/path/in/repo.safetensors`` (or ``org/name`` holding one adapter file at its top) - downloaded
  with its encoder (``config.json`` + weights [+ ``preprocessor_config.json``]).

SDXL's default is ``ip-adapter_sdxl_vit-h`` rather than ``ip-adapter_sdxl``: h94 trained both (the same
architecture and data); the vit-h one reads the ViT-H encoder SD 1.x's default reads too (632 M parameters,
2.5 GB in fp32) where the other needs OpenCLIP ViT-bigG (1.8 G parameters, 3.7 GB): one encoder on disk for
both families, and an encoding pass about a third of the cost. SD 2.x has no IP-Adapter in h94/IP-Adapter:
"" is refused for it.

The family is read from the tensors, never the name: the adapter's key/value projections
(``ip_adapter.<n>.to_k_ip.weight``) take the text features (768 wide: SD 1.x, 2048: SDXL) and there is one
pair per cross-attention layer of the UNet. No torch at import (the CLI and Blender check with it).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import file_selection, hub, revisions, sources
from .errors import EngineError, ModelNotFoundError
from .files import is_repo_id
from .loras import family_of_width

IP_ADAPTER_REPO = "h94/IP-Adapter"
SHARED_ENCODER = "models/image_encoder"  # h94's OpenCLIP ViT-H-14 (SD 1.x and the SDXL vit-h adapter)
DEFAULT_IP_ADAPTERS = {  # family -> the adapter file in IP_ADAPTER_REPO (its encoder: SHARED_ENCODER)
    "SD1": "models/ip-adapter_sd15.safetensors",
    "SDXL": "sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
}
ENCODER_FOLDER = "image_encoder"
ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # safetensors first; the pickle only when allowed
ENCODER_EXTRA = ("preprocessor_config.json",)  # taken where the repo has it (h94's has none: 224 px CLIP)
_ADAPTER_KEY = re.compile(r"ip_adapter\.(\d+)\.to_k_ip\.weight")


@dataclass(frozen=True)
class AdapterFiles:
    """A resolved IP-Adapter: its weights file and image encoder folder, and how the recipe names them."""

    weights: Path
    encoder: Path
    name: str  # what the artist chose, or the default's repo path
    revision: str  # the hub commit, or the file's sha256

    @property
    def key(self) -> tuple[str, str, str]:
        return (str(self.weights), str(self.encoder), self.revision)

    def recipe(self) -> dict[str, Any]:
        return {"model": self.name, "revision": self.revision, "image_encoder": str(self.encoder)}


def default_model(family: str) -> str:
    """The default IP-Adapter of ``family`` as a ``repo/path`` source.

    Raises:
        ValueError: SD 2.x (no default), naming ``reference.model``.
    """
    path = DEFAULT_IP_ADAPTERS.get(family)
    if path is None:
        raise ValueError(
            f"reference.model is empty and there is no default IP-Adapter for {family} models (h94/IP-Adapter has "
            "SD 1.x and SDXL ones); set reference.model to an IP-Adapter made for your model, or remove the "
            "reference image."
        )
    return f"{IP_ADAPTER_REPO}/{path}"


def split_hub_path(text: str) -> tuple[str, str] | None:
    """``org/name/path/in/repo`` -> (``org/name``, ``path/in/repo``); ``org/name`` -> (it, ""); else None."""
    parts = text.replace("\\", "/").split("/")
    if len(parts) < 2 or not is_repo_id("/".join(parts[:2])) or any(p in ("", ".", "..") for p in parts[2:]):
        return None
    return "/".join(parts[:2]), "/".join(parts[2:])


def encoder_candidates(weights: str) -> list[str]:
    """Where the image encoder of the adapter at ``weights`` (a path with ``/``) may be, in order."""
    parent = weights.rsplit("/", 1)[0] if "/" in weights else ""
    beside = f"{parent}/{ENCODER_FOLDER}" if parent else ENCODER_FOLDER
    shared = f"{parent.rsplit('/', 1)[0]}/{SHARED_ENCODER}" if "/" in parent else SHARED_ENCODER
    order = [shared, beside] if "vit-h" in weights.rsplit("/", 1)[-1].lower() else [beside, shared]
    return list(dict.fromkeys(order))


def _pick_adapter(names: list[str], where: str, allow_pickle: bool) -> str:
    """The adapter file among a folder's/repo's top-level file names."""
    return file_selection.pick_weights_file(names, where, what="IP-Adapter", allow_pickle=allow_pickle)


def _encoder_files(names: set[str], folder: str, allow_pickle: bool, what: str) -> list[str]:
    """The files of the image encoder in ``folder`` among ``names`` (paths relative to one root)."""
    if f"{folder}/config.json" not in names:
        return []
    weights = [f"{folder}/{w}" for w in ENCODER_WEIGHTS if f"{folder}/{w}" in names]
    if not weights:
        return []
    if weights[0].endswith(".bin") and not allow_pickle:
        raise file_selection.pickle_refusal(f"The image encoder of {what}")
    extra = [f"{folder}/{e}" for e in ENCODER_EXTRA if f"{folder}/{e}" in names]
    return [f"{folder}/config.json", weights[0], *extra]


def _choose(names: list[str], weights: str, allow_pickle: bool, what: str) -> tuple[str, str, list[str]]:
    """(the adapter file, its encoder folder, every file to read) among ``names`` (paths under one root)."""
    if not weights:
        weights = _pick_adapter(names, what, allow_pickle)
    elif weights not in names:
        raise ModelNotFoundError(f"{what} has no file {weights}; check the path after the repo id.")
    if weights.lower().endswith(file_selection.PICKLE_SUFFIXES) and not allow_pickle:
        raise file_selection.pickle_refusal(f"The IP-Adapter {what}")
    listed = set(names)
    for folder in encoder_candidates(weights):
        files = _encoder_files(listed, folder, allow_pickle, what)
        if files:
            return weights, folder, [weights, *files]
    raise ModelNotFoundError(
        f"The image encoder of the IP-Adapter {what} was not found (looked in {', '.join(encoder_candidates(weights))}"
        " for config.json and model.safetensors); put its image_encoder folder beside the adapter file."
    )


def resolve(
    model: str,
    family: str,
    *,
    allow_pickle: bool,
    cache_dir: str | None,
    offline: bool,
    read_cache_dirs: tuple[str, ...] | None = None,
    on_progress: Any = None,
    cancel_event: threading.Event | None = None,
) -> AdapterFiles:
    """Find (download) the adapter ``model`` ("" = ``family``'s default) and its image encoder.

    Raises:
        ValueError: "" for a family without a default.
        ModelNotFoundError: missing files, or a repo not cached while offline.
        UnsafeModelFormatError: pickled weights while pickles are not allowed.
    """
    text = model.strip() or default_model(family)
    path = Path(os.path.expanduser(text))
    if path.suffix.lower() in file_selection.PICKLE_SUFFIXES and not allow_pickle:
        raise file_selection.pickle_refusal(f"The IP-Adapter {path.name}")
    if path.is_dir() or path.is_file():
        return _local(path.resolve(), allow_pickle, cache_dir)
    hub_path = split_hub_path(text)
    if hub_path is None or (sources.looks_like_path(text) and not hub_path[1]):
        raise ModelNotFoundError(
            f"There is no IP-Adapter file or folder at {path}; check the path (Blender-relative '//' paths must be "
            "made absolute), or give a Hugging Face repo path such as "
            "'h94/IP-Adapter/models/ip-adapter_sd15.safetensors'."
        )
    repo_id, weights = hub_path

    def select(names: list[str]) -> list[str]:
        return _choose(names, weights, allow_pickle, text)[2]

    folder = hub.resolve_hub_files(repo_id, select, cache_dir=cache_dir, offline=offline,
                                   read_cache_dirs=read_cache_dirs, on_progress=on_progress, cancel_event=cancel_event)
    try:
        found, encoder, _ = _choose(file_selection.folder_listing(folder), weights, allow_pickle, text)
    except ModelNotFoundError as error:
        # A download would have brought the file (or said the repo lacks it): this is a cached snapshot holding
        # other files of the repo (h94's usual case), used offline or because the hub could not be asked.
        caches = ", ".join(hub.lookup_caches(cache_dir, read_cache_dirs))
        reason = hub.offline_reason(offline) if hub.hub_offline(offline) else "huggingface.co could not be reached"
        raise ModelNotFoundError(
            f"The IP-Adapter {text} is not in the model caches ({caches}) and {reason}; go online so it can be "
            "downloaded (with its image encoder: about 2.5 GB), or choose an IP-Adapter file on disk."
        ) from error
    return AdapterFiles(folder / found, folder / encoder, text, revisions.snapshot_revision(folder) or "")


def _local(path: Path, allow_pickle: bool, cache_dir: str | None) -> AdapterFiles:
    """A local adapter file or folder; its encoder searched in the folders around it."""
    if path.is_dir():
        name = _pick_adapter([p.name for p in path.iterdir() if p.is_file()], str(path), allow_pickle)
        weights = path / name
    else:
        if path.suffix.lower() not in file_selection.MODEL_FILE_SUFFIXES:
            raise ModelNotFoundError(f"{path.name} is not an IP-Adapter file; choose a .safetensors file.")
        weights = path
    root = weights.parent.parent
    relative = f"{weights.parent.name}/{weights.name}"
    names = [p.relative_to(root).as_posix() for folder in encoder_candidates(relative)
             for p in (root / folder).glob("*") if p.is_file()]
    try:
        _, encoder, _ = _choose([relative, *names], relative, allow_pickle, str(weights))
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"The image encoder of the IP-Adapter {weights.name} was not found: put its image_encoder folder "
            f"(config.json + model.safetensors) beside the file, in {weights.parent}."
        ) from None
    return AdapterFiles(weights, root / encoder, str(path), revisions.file_digest(weights, cache_dir))


def read_state_dict(files: AdapterFiles) -> dict[str, dict[str, Any]]:
    """``{"image_proj": {...}, "ip_adapter": {...}}`` as ``load_ip_adapter`` takes it (pickles only reach here
    when allowed, and load weights-only)."""
    if files.weights.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(str(files.weights), framework="pt", device="cpu") as f:
            for key in f.keys():
                part, _, rest = key.partition(".")
                if part in state:
                    state[part][rest] = f.get_tensor(key)
        return state
    import torch

    loaded = torch.load(str(files.weights), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise EngineError(f"{files.weights.name} is not an IP-Adapter (no image_proj / ip_adapter weights).")
    return {part: dict(loaded.get(part, {})) for part in ("image_proj", "ip_adapter")}


def check_fits(state: dict[str, dict[str, Any]], unet_config: Any, cross_layers: int, encoder_config: dict[str, Any],
               model_family: str, name: str) -> None:
    """Refuse an adapter that cannot run on this UNet, before any weights change.

    Its key/value projections take the text features (the family's width) and there is one pair per
    cross-attention layer; its image projection reads the encoder's embedding.

    Raises:
        EngineError: naming both families (or what differs) and ``reference.model``.
    """
    keys = sorted(int(m[1]) for key in state["ip_adapter"] if (m := _ADAPTER_KEY.fullmatch(f"ip_adapter.{key}")))
    if not state["image_proj"] or not keys:
        raise EngineError(f"reference.model: {name} is not an IP-Adapter (it has no image_proj / ip_adapter weights).")
    width = int(state["ip_adapter"][f"{keys[0]}.to_k_ip.weight"].shape[1])
    unet_width = int(unet_config.cross_attention_dim)
    if width != unet_width:
        raise EngineError(
            f"reference.model: the IP-Adapter {name} is for {family_of_width(width)} (text features {width} wide), but "
            f"the model is {model_family} ({unet_width} wide); choose an IP-Adapter made for {model_family} models, "
            "or leave reference.model empty for the default."
        )
    if len(keys) != cross_layers:
        raise EngineError(
            f"reference.model: the IP-Adapter {name} has {len(keys)} cross-attention layers, but the model "
            f"({model_family}) has {cross_layers}; it was made for another UNet."
        )
    projection = state["image_proj"].get("proj.weight")
    embedding = encoder_config.get("projection_dim")
    if projection is not None and embedding is not None and int(projection.shape[-1]) != int(embedding):
        raise EngineError(
            f"reference.model: the IP-Adapter {name} reads {int(projection.shape[-1])}-wide image embeddings, but "
            f"the image encoder beside it gives {embedding}; it needs its own image encoder (an ip-adapter_sdxl "
            "file the ViT-bigG one in sdxl_models/image_encoder, a *vit-h* file the ViT-H one in models/image_encoder)."
        )


def check_available(model: str, family: str | None, *, allow_pickle: bool, cache_dir: str | None, offline: bool,
                    read_cache_dirs: tuple[str, ...] | None = None) -> None:
    """Before anything runs: can the adapter ``model`` be had? From the disk alone (no download, nothing loaded):
    a file or folder with its encoder, or a repo path cached; online, a repo path not cached is left to the run.

    ``family``: the base model's (None when unknown: "" is then not checked). Raises as ``resolve``.
    """
    if not model.strip() and family is None:
        return
    text = model.strip() or default_model(family or "")
    path = Path(os.path.expanduser(text))
    if path.suffix.lower() in file_selection.PICKLE_SUFFIXES and not allow_pickle:
        raise file_selection.pickle_refusal(f"The IP-Adapter {path.name}")
    if not path.exists() and split_hub_path(text) is not None and not hub.hub_offline(offline):
        return
    resolve(text, family or "", allow_pickle=allow_pickle, cache_dir=cache_dir, offline=True,
            read_cache_dirs=read_cache_dirs)


def encoder_config(folder: Path) -> dict[str, Any]:
    """The image encoder's ``config.json`` (``projection_dim``, ``image_size``)."""
    config: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return config
