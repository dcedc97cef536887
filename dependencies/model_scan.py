"""What the model files on disk are, read from their headers only (never their weights).

Model folders are walked and Hugging Face caches listed; each ``.safetensors`` file
is classified from its header (``safetensors_header.py``, ``model_kinds.py``), a
diffusers folder from its configs. A folder of hundreds of files is scanned in
milliseconds (``bench/model_scan.py``); a rescan re-reads only files that changed.
Pickle files (``.ckpt .pt .pth .bin``) are listed but not opened: reading them
means unpickling, which can run code.

Plain Python: no bpy, no torch, no safetensors package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine.families import detect_family
from .hf_cache import cached_repo_ids, folder_size, main_snapshot, repo_folder
from .model_kinds import CONTEXT_FAMILIES, PIPELINE_KINDS, classify_header
from .safetensors_header import HeaderError, HeaderText

SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_DEPTH = 4  # folders below a model folder that are walked
FAMILY_LABELS = {"SD1": "SD 1.x", "SD2": "SD 2.x", "SDXL": "SDXL"}
KIND_LABELS = {
    "CHECKPOINT": "model",
    "LORA": "LoRA",
    "CONTROLNET": "ControlNet",
    "VAE": "VAE",
    "EMBEDDING": "embedding",
    "IP_ADAPTER": "IP-Adapter",
    "MARIGOLD_INTRINSICS": "Marigold intrinsics (material maps)",
    "MARIGOLD_NORMALS": "Marigold normals (material maps)",
    "MARIGOLD_DEPTH": "Marigold depth",
    "UNKNOWN": "unknown kind",
}
PICKLE_REASON = (
    "pickle format: loading it can run arbitrary code on this computer; use a .safetensors version, or allow "
    "pickle checkpoints in the preferences only for files you trust"
)


@dataclass(frozen=True)
class ModelEntry:
    """One model found on disk.

    Attributes:
        path: the file, the diffusers folder, or (``layout == "hub"``) the repo id.
        kind: one of ``model_kinds.KINDS``.
        family: ``SD1``, ``SD2``, ``SDXL`` or None (could not be told).
        inpainting: True/False, or None where it could not be told.
        few_step: True where the file says so; None otherwise (absence proves nothing).
        size: bytes on disk.
        layout: ``single file``, ``diffusers folder`` or ``hub``.
        origin: where it was found (a model folder, ``add-on cache``, ``Hugging Face cache``).
        problem: why it cannot be used (truncated, corrupt), or None.
        refused: why it is not loaded (pickle), or None.
    """

    path: str
    kind: str
    family: str | None
    inpainting: bool | None = None
    few_step: bool | None = None
    size: int = 0
    layout: str = "single file"
    origin: str = ""
    problem: str | None = None
    refused: str | None = None

    @property
    def name(self) -> str:
        return self.path if self.layout == "hub" else os.path.basename(self.path.rstrip("/\\")) or self.path

    @property
    def family_label(self) -> str:
        if self.family is None:
            return "family unknown"
        parts = [FAMILY_LABELS[self.family]]
        if self.inpainting:
            parts.append("inpainting")
        if self.few_step:
            parts.append("few-step")
        return " ".join(parts)

    @property
    def usable(self) -> bool:
        return self.problem is None and self.refused is None

    def describe(self) -> str:
        """One line for a list: ``name · SDXL · LoRA · 144 MB``."""
        parts = [self.name, self.family_label, KIND_LABELS[self.kind], _format_size(self.size)]
        if self.problem:
            parts.append(f"unreadable: {self.problem}")
        elif self.refused:
            parts.append("refused (pickle)")
        return " · ".join(parts)


def _format_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# --- one file or folder -------------------------------------------------------------------------------


def scan_file(path: str, origin: str = "", allow_pickle: bool = False) -> ModelEntry:
    """One model file as an entry; a bad file gives an entry with ``problem`` set (never an exception)."""
    try:
        size = os.path.getsize(path)
    except OSError as error:
        return ModelEntry(path, "UNKNOWN", None, origin=origin, problem=f"cannot be read: {error.strerror}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in PICKLE_SUFFIXES:
        return ModelEntry(path, "UNKNOWN", None, size=size, origin=origin,
                          refused=None if allow_pickle else PICKLE_REASON)
    try:
        found = classify_header(HeaderText.read(path))
    except HeaderError as error:
        return ModelEntry(path, "UNKNOWN", None, size=size, origin=origin, problem=str(error))
    except OSError as error:
        return ModelEntry(path, "UNKNOWN", None, size=size, origin=origin, problem=f"cannot be read: {error}")
    return ModelEntry(path, found.kind, found.family, found.inpainting, found.few_step, size, origin=origin)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _config_family(unet_config: Mapping[str, Any]) -> str | None:
    if unet_config.get("addition_embed_type") == "text_time":
        return "SDXL"
    width = unet_config.get("cross_attention_dim")
    return CONTEXT_FAMILIES.get(width) if isinstance(width, int) else None


def scan_diffusers_folder(folder: str, origin: str = "", *, size: int | None = None,
                          layout: str = "diffusers folder", name: str | None = None) -> ModelEntry | None:
    """A diffusers pipeline (``model_index.json``) or model (``config.json``) folder, or an IP-Adapter folder (an
    ``image_encoder`` beside IP-Adapter weights), from its configs; else None. A pipeline is a base model
    (``CHECKPOINT``) unless its ``_class_name`` is one of ``PIPELINE_KINDS`` (Marigold: material maps)."""
    path = name or folder
    measured = folder_size(folder) if size is None else size
    if os.path.isfile(os.path.join(folder, "model_index.json")):
        index = _read_json(os.path.join(folder, "model_index.json")) or {}
        unet = _read_json(os.path.join(folder, "unet", "config.json"))
        kind = PIPELINE_KINDS.get(str(index.get("_class_name")))
        if kind is not None:
            return ModelEntry(path, kind, _config_family(unet) if unet else None, None, None, measured, layout, origin)
        scheduler = _read_json(os.path.join(folder, "scheduler", "scheduler_config.json")) or {}
        if unet is None:
            return ModelEntry(path, "CHECKPOINT", None, size=measured, layout=layout, origin=origin,
                              problem="unet/config.json is missing or unreadable")
        # The engine's own rule, so the family shown before loading is the one it reports after.
        family = detect_family(unet, scheduler)
        in_channels = unet.get("in_channels")
        return ModelEntry(path, "CHECKPOINT", family.name, in_channels == 9 if isinstance(in_channels, int) else None,
                          True if family.few_step else None, measured, layout, origin)
    config = _read_json(os.path.join(folder, "config.json"))
    if config is not None and config.get("_class_name") in ("ControlNetModel", "ControlNetXSAdapter"):
        return ModelEntry(path, "CONTROLNET", _config_family(config), None, None, measured, layout, origin)
    if _is_ip_adapter_folder(folder):
        return ModelEntry(path, "IP_ADAPTER", None, None, None, measured, layout, origin)
    return None


def _is_ip_adapter_folder(folder: str) -> bool:
    """h94/IP-Adapter's layout: an ``image_encoder`` (a CLIP vision model's config.json) at the top or under
    ``models``/``sdxl_models``, beside the adapters' weights."""
    for sub in ("", "models", "sdxl_models"):
        config = _read_json(os.path.join(folder, sub, "image_encoder", "config.json"))
        if config is not None and "CLIPVision" in " ".join(map(str, config.get("architectures", []))):
            return True
    return False


# --- folders ------------------------------------------------------------------------------------------


@dataclass
class ScanCache:
    """Entries by path, remembered with the file's size and modification time: a refresh re-reads only changes."""

    files: dict[str, tuple[int, int, bool, ModelEntry]] = field(default_factory=dict)

    def entry(self, path: str, origin: str, allow_pickle: bool) -> ModelEntry:
        try:
            stat = os.stat(path)
        except OSError as error:
            return ModelEntry(path, "UNKNOWN", None, origin=origin, problem=f"cannot be read: {error.strerror}")
        known = self.files.get(path)
        if known is not None and known[:3] == (stat.st_size, stat.st_mtime_ns, allow_pickle):
            return replace(known[3], origin=origin) if known[3].origin != origin else known[3]
        entry = scan_file(path, origin, allow_pickle)
        self.files[path] = (stat.st_size, stat.st_mtime_ns, allow_pickle, entry)
        return entry


def scan_folder(folder: str, *, allow_pickle: bool = False, cache: ScanCache | None = None,
                max_depth: int = MAX_DEPTH) -> list[ModelEntry]:
    """Every model under ``folder``: single files and diffusers folders (not descended into), headers only."""
    cache = cache if cache is not None else ScanCache()
    folder = os.path.abspath(os.path.expanduser(folder))
    entries: list[ModelEntry] = []
    root_depth = folder.rstrip(os.sep).count(os.sep)
    visited: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):  # artists link model folders between tools
        real = os.path.realpath(root)
        if real in visited:  # a link loop, or the same folder linked twice
            dirs[:] = []
            continue
        visited.add(real)
        found = scan_diffusers_folder(root, folder)
        if found is not None:
            entries.append(found)
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if root.count(os.sep) - root_depth >= max_depth:
            dirs[:] = []
        for name in sorted(files):
            if name.lower().endswith((SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)) and not name.startswith("."):
                entries.append(cache.entry(os.path.join(root, name), folder, allow_pickle))
    return entries


def scan_hub_cache(cache_dir: str, origin: str, *, cache: ScanCache | None = None) -> list[ModelEntry]:
    """The repos in a Hugging Face cache: pipelines and ControlNets from their configs, LoRA repos from their file."""
    cache = cache if cache is not None else ScanCache()
    entries = []
    for repo_id in cached_repo_ids(cache_dir):
        try:
            folder = repo_folder(cache_dir, repo_id)
        except ValueError:
            continue
        snapshot = main_snapshot(folder)
        if snapshot is None:
            continue
        size = folder_size(os.path.join(folder, "blobs"))
        found = scan_diffusers_folder(snapshot, origin, size=size, layout="hub", name=repo_id)
        if found is None:
            weights = sorted(n for n in os.listdir(snapshot) if n.endswith(SAFETENSORS_SUFFIX))
            if len(weights) != 1:
                continue
            file_entry = cache.entry(os.path.join(snapshot, weights[0]), origin, False)
            if file_entry.kind == "UNKNOWN":
                continue  # the shared cache also holds language models and the like: not ours to list
            found = replace(file_entry, path=repo_id, layout="hub", size=size)
        entries.append(found)
    return entries


def scan_all(folders: Iterable[str], hub_caches: Iterable[tuple[str, str]], *, allow_pickle: bool = False,
             cache: ScanCache | None = None) -> tuple[list[ModelEntry], list[str]]:
    """Entries from model folders and Hugging Face caches ``(cache_dir, label)``; plus the folders that are missing.

    A repo in two caches is listed once, from the first cache (the one that wins when loading).
    """
    cache = cache if cache is not None else ScanCache()
    entries: list[ModelEntry] = []
    missing: list[str] = []
    seen_repos: set[str] = set()
    for cache_dir, label in hub_caches:
        for entry in scan_hub_cache(cache_dir, label, cache=cache):
            if entry.path not in seen_repos:
                seen_repos.add(entry.path)
                entries.append(entry)
    seen_paths: set[str] = set()
    for folder in folders:
        path = os.path.abspath(os.path.expanduser(folder))
        if not os.path.isdir(path):
            missing.append(folder)
            continue
        for entry in scan_folder(path, allow_pickle=allow_pickle, cache=cache):
            if entry.path not in seen_paths:
                seen_paths.add(entry.path)
                entries.append(entry)
    return entries, missing


# --- other tools' folder layouts ----------------------------------------------------------------------

# Relative to a ComfyUI or Automatic1111 (Forge, SD.Next) install: the folders they keep models in.
TOOL_LAYOUTS = (
    ("ComfyUI", ("models/checkpoints", "models/loras", "models/controlnet")),
    ("Automatic1111", ("models/Stable-diffusion", "models/Lora", "models/ControlNet")),
)
# Where those tools are usually installed, relative to the home folder.
TOOL_HOMES = ("ComfyUI", "stable-diffusion-webui", "stable-diffusion-webui-forge", "Documents/ComfyUI",
              "comfy/ComfyUI", "AI/ComfyUI", "AI/stable-diffusion-webui")


def tool_model_folders(roots: Iterable[str]) -> list[tuple[str, str]]:
    """``(label, folder)`` for each existing ComfyUI / Automatic1111 model folder under ``roots``.

    A root may be the tool's install folder or its ``models`` folder.
    """
    found: list[tuple[str, str]] = []
    for root in dict.fromkeys(os.path.abspath(os.path.expanduser(r)) for r in roots):
        base = os.path.dirname(root) if os.path.basename(root) == "models" else root
        for tool, subfolders in TOOL_LAYOUTS:
            for sub in subfolders:
                path = os.path.join(base, *sub.split("/"))
                if os.path.isdir(path) and path not in (f for _, f in found):
                    found.append((f"{tool} {sub.rsplit('/', 1)[1]}", path))
    return found


def fits_family(entry: ModelEntry, family: str | None) -> bool | None:
    """Whether ``entry`` can be used with a model of ``family``: None when either family is unknown."""
    if family is None or entry.family is None:
        return None
    return entry.family == family


# --- what the add-on shows between scans --------------------------------------------------------------


@dataclass
class ScanState:
    """The last scan, kept while the add-on is loaded: filled only by the Scan / pick operators, never by a
    redraw or by enabling the add-on; a rescan re-reads only files that changed (``ScanCache``)."""

    entries: list[ModelEntry] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    scanned: bool = False
    seconds: float = 0.0
    cache: ScanCache = field(default_factory=ScanCache)
    by_path: dict[str, ModelEntry] = field(default_factory=dict)
    tool_folders: list[tuple[str, str]] | None = None

    def update(self, folders: Iterable[str], hub_caches: Iterable[tuple[str, str]], allow_pickle: bool) -> None:
        import time

        start = time.perf_counter()
        self.entries, self.missing = scan_all(folders, hub_caches, allow_pickle=allow_pickle, cache=self.cache)
        self.seconds = time.perf_counter() - start
        self.by_path = {_key(entry.path): entry for entry in self.entries}
        self.scanned = True

    def find(self, model: str) -> ModelEntry | None:
        """The entry a Model/LoRA/ControlNet field's text names (a path or a repo id), if the last scan saw it."""
        return self.by_path.get(_key(model)) if model.strip() else None

    def tool_folders_found(self) -> list[tuple[str, str]]:
        """ComfyUI / Automatic1111 model folders in the usual places (a few ``stat`` calls, once a session)."""
        if self.tool_folders is None:
            home = os.path.expanduser("~")
            self.tool_folders = tool_model_folders(os.path.join(home, sub) for sub in TOOL_HOMES)
        return self.tool_folders

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


def _key(model: str) -> str:
    text = model.strip()
    return os.path.normcase(os.path.normpath(os.path.expanduser(text))) if os.sep in text or "\\" in text else text


SCAN = ScanState()
