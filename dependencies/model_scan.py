"""What the model files on disk are, read from their headers only (never their weights).

A ``.safetensors`` file starts with an 8-byte little-endian header length and a
JSON header naming every tensor with its dtype, shape and byte range (plus an
optional ``__metadata__`` of strings). That is all this module reads: a
checkpoint of 7 GB costs one ``open`` and a few KB, so a folder of hundreds of
files is scanned in milliseconds (``bench/model_scan.py``).

From tensor names and shapes it tells apart (``classify_tensors``):

* the kind: a full checkpoint (UNet under ``model.diffusion_model.``), a LoRA
  (``lora_down``/``lora_up``, ``lora_A``/``lora_B``), a ControlNet
  (``control_model.``/``controlnet_*``), a VAE, a textual-inversion embedding;
* the family: SD 1.x (OpenAI CLIP text encoder, 768-wide cross-attention),
  SD 2.x (OpenCLIP, 1024), SDXL (two text encoders, 2048-wide cross-attention,
  the size-conditioning ``label_emb``);
* inpainting: the UNet's first convolution takes 9 channels instead of 4;
* few-step: the LCM guidance embedding (``cond_proj``), or a trainer's
  ``__metadata__`` that says so.

What cannot be told is ``None`` (shown as "unknown"), never guessed from a
file name. Pickle files (``.ckpt .pt .pth .bin``) are listed but not opened:
reading them means unpickling, which can run code.

Plain Python: no bpy, no torch, no safetensors package.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine.families import detect_family
from .hf_cache import cached_repo_ids, folder_size, main_snapshot, repo_folder

SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
MAX_DEPTH = 4  # folders below a model folder that are walked
FAMILY_LABELS = {"SD1": "SD 1.x", "SD2": "SD 2.x", "SDXL": "SDXL"}
# Cross-attention width (the text encoder's output) per family.
CONTEXT_FAMILIES = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
KINDS = ("CHECKPOINT", "LORA", "CONTROLNET", "VAE", "EMBEDDING", "UNKNOWN")
KIND_LABELS = {
    "CHECKPOINT": "model",
    "LORA": "LoRA",
    "CONTROLNET": "ControlNet",
    "VAE": "VAE",
    "EMBEDDING": "embedding",
    "UNKNOWN": "unknown kind",
}
PICKLE_REASON = (
    "pickle format: loading it can run arbitrary code on this computer; use a .safetensors version, or allow "
    "pickle checkpoints in the preferences only for files you trust"
)
# Trainer metadata that names the base model (kohya's sd-scripts, the Stability AI model spec).
_METADATA_FAMILY = (
    (re.compile(r"sdxl|stable-diffusion-xl", re.I), "SDXL"),
    (re.compile(r"sd_?v2|stable-diffusion-v2", re.I), "SD2"),
    (re.compile(r"sd_?v1|stable-diffusion-v1", re.I), "SD1"),
)
_METADATA_FAMILY_KEYS = ("ss_base_model_version", "modelspec.architecture")
_FEW_STEP_WORDS = re.compile(r"\b(lcm|turbo|lightning|hyper)\b", re.I)


class HeaderError(ValueError):
    """A ``.safetensors`` file whose header cannot be read: too short, truncated or corrupt."""


@dataclass(frozen=True)
class ModelEntry:
    """One model found on disk.

    Attributes:
        path: the file, the diffusers folder, or (``layout == "hub"``) the repo id.
        kind: one of ``KINDS``.
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


# --- one safetensors header ---------------------------------------------------------------------------


def _read_header_bytes(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """The header's JSON (undecoded) and the bytes of tensor data the file holds after it."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise HeaderError(f"the file has only {size} bytes (truncated or empty)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise HeaderError("the header length is implausible (not a safetensors file, or corrupt)")
        if 8 + length > size:
            raise HeaderError(f"the header needs {length} bytes but the file ends after {size - 8} (truncated)")
        raw = handle.read(length)
    return raw, size - 8 - length


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole JSON header of a ``.safetensors`` file (tensor name -> dtype/shape/data_offsets, ``__metadata__``).

    Reads 8 bytes plus the header, never the weights. Raises ``HeaderError`` saying what is wrong when
    the file is too short, truncated or not safetensors. (A scan uses ``HeaderText``: parsing every
    entry of a 2,500-tensor header costs more than classifying it.)
    """
    raw, available = _read_header_bytes(path)
    try:
        header = json.loads(raw)
    except ValueError as error:
        raise HeaderError(f"the header is not valid JSON (corrupt): {error}") from error
    if not isinstance(header, dict):
        raise HeaderError("the header is not a JSON object (corrupt)")
    data_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            data_end = max(data_end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as error:
            raise HeaderError(f"the tensor {name!r} has no valid data_offsets (corrupt)") from error
    if data_end > available:
        raise HeaderError(f"the tensors need {data_end} bytes of data but the file holds {available} (truncated)")
    return header


def tensor_shapes(header: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(info.get("shape", ())) for name, info in header.items() if name != "__metadata__"}


_DATA_END = re.compile(rb'"data_offsets"\s*:\s*\[\s*\d+\s*,\s*(\d+)\s*\]')
_ENTRY_SHAPE = rb'"\s*:\s*\{[^{}]*?"shape"\s*:\s*\[([^\]]*)\]'
_CROSS_ATTENTION_ENTRY = re.compile(rb'"([^"]*attn2[._]to_k[^"]*)' + _ENTRY_SHAPE)
_LORA_NAME = re.compile(rb'(?:lora_down|lora_up|lora_A|lora_B|lora\.down|lora\.up)\.weight"')


class HeaderText:
    """A safetensors header as its JSON bytes: names found with substring and regex searches (C speed),
    only the few shapes and the metadata that decide the classification parsed."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self._metadata: dict[str, Any] | None = None

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, Any] | None = None) -> HeaderText:
        header: dict[str, Any] = {name: {"shape": list(shape)} for name, shape in shapes.items()}
        if metadata:
            header["__metadata__"] = dict(metadata)
        return cls(json.dumps(header).encode())

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> HeaderText:
        """Read and check a file's header (``HeaderError`` when truncated or corrupt)."""
        text, available = _read_header_bytes(path)
        stripped = text.strip()
        if not (stripped.startswith(b"{") and stripped.endswith(b"}")):
            read_safetensors_header(path)  # raises, saying what is wrong
        # A complete file's last tensor ends exactly where the file does: one substring search says so.
        if text.rfind(b",%d]" % available) >= 0 or text.rfind(b", %d]" % available) >= 0:
            return cls(text)
        ends = [int(end) for end in _DATA_END.findall(text)]
        if not ends:
            read_safetensors_header(path)  # the precise complaint (or: a valid header without tensors)
        elif max(ends) > available:
            raise HeaderError(
                f"the tensors need {max(ends)} bytes of data but the file holds {available} (truncated)"
            )
        return cls(text)

    def has_prefix(self, *prefixes: str) -> bool:
        return any(b'"' + prefix.encode() in self.text for prefix in prefixes)

    def has(self, name: str) -> bool:
        return b'"' + name.encode() + b'"' in self.text

    def shape(self, name: str) -> tuple[int, ...] | None:
        found = re.search(b'"' + re.escape(name.encode()) + _ENTRY_SHAPE, self.text)
        return _dims(found.group(1)) if found else None

    def has_lora_weights(self) -> bool:
        return _LORA_NAME.search(self.text) is not None

    def context_width(self, prefix: str) -> int | None:
        """The cross-attention input width (the text encoder's) of the first ``attn2.to_k`` under ``prefix``."""
        for found in _CROSS_ATTENTION_ENTRY.finditer(self.text):
            name, shape = found.group(1).decode("utf-8", "replace"), _dims(found.group(2))
            if not name.startswith(prefix) or len(shape) != 2:
                continue
            if name.endswith(".weight") and any(up in name for up in ("lora_up", "lora_B", "lora.up")):
                continue  # the up projection's input is the rank, not the text width
            return shape[1]
        return None

    def metadata(self) -> dict[str, Any]:
        """``__metadata__`` (trainer notes, all strings), parsed once; {} when absent or unreadable."""
        if self._metadata is None:
            self._metadata = {}
            start = self.text.find(b'"__metadata__"')
            if start >= 0:
                brace = self.text.find(b"{", start)
                end = self.text.find(b"}", brace)  # metadata values are strings: find the closing brace
                while end >= 0:
                    try:
                        value = json.loads(self.text[brace : end + 1])
                    except ValueError:
                        end = self.text.find(b"}", end + 1)  # a "}" inside a string: try the next one
                        continue
                    self._metadata = value if isinstance(value, dict) else {}
                    break
        return self._metadata


def _dims(text: bytes) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(b",") if part.strip())


def _metadata_family(metadata: Mapping[str, Any]) -> str | None:
    for key in _METADATA_FAMILY_KEYS:
        value = metadata.get(key)
        if isinstance(value, str):
            for pattern, family in _METADATA_FAMILY:
                if pattern.search(value):
                    return family
    return None


def _metadata_few_step(metadata: Mapping[str, Any]) -> bool | None:
    for key in ("modelspec.architecture", "modelspec.usage_hint", "ss_base_model_version"):
        value = metadata.get(key)
        if isinstance(value, str) and _FEW_STEP_WORDS.search(value):
            return True
    return None


@dataclass(frozen=True)
class Classification:
    kind: str
    family: str | None
    inpainting: bool | None = None
    few_step: bool | None = None


def classify_tensors(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, Any] | None = None) -> Classification:
    """``classify_header`` for a name -> shape mapping."""
    return classify_header(HeaderText.from_shapes(shapes, metadata))


def classify_header(header: HeaderText) -> Classification:
    """Kind and family from tensor names and shapes (and trainer metadata); None where it cannot be told."""
    metadata = header.metadata()
    few_step = True if b"cond_proj" in header.text else _metadata_few_step(metadata)

    if header.has_prefix("model.diffusion_model."):
        return Classification("CHECKPOINT", _checkpoint_family(header, metadata),
                              _inpainting(header.shape("model.diffusion_model.input_blocks.0.0.weight")), few_step)
    if header.has_lora_weights():
        return Classification("LORA", _lora_family(header, metadata), None, few_step)
    if header.has_prefix("control_model."):
        family = "SDXL" if header.has("control_model.label_emb.0.0.weight") else None
        return Classification("CONTROLNET", family or _width_family(header.context_width("control_model.")),
                              None, few_step)
    if header.has_prefix("controlnet_cond_embedding.", "controlnet_down_blocks."):
        family = "SDXL" if header.has_prefix("add_embedding.") else None
        return Classification("CONTROLNET", family or _width_family(header.context_width("")), None, few_step)
    if header.has_prefix("encoder.conv_in.", "decoder.conv_in.", "first_stage_model."):
        return Classification("VAE", _metadata_family(metadata))
    if header.has("emb_params") or header.has("clip_l") or header.has("clip_g") or header.has_prefix("string_to_param"):
        return Classification("EMBEDDING", "SDXL" if header.has("clip_g") else _metadata_family(metadata))
    return Classification("UNKNOWN", _metadata_family(metadata))


def _width_family(width: int | None) -> str | None:
    return CONTEXT_FAMILIES.get(width) if width is not None else None


def _inpainting(conv_in_shape: tuple[int, ...] | None) -> bool | None:
    if conv_in_shape is None or len(conv_in_shape) != 4:
        return None
    return conv_in_shape[1] == 9


def _checkpoint_family(header: HeaderText, metadata: Mapping[str, Any]) -> str | None:
    """The text encoders say it (their layout differs per family); else the cross-attention width; else metadata."""
    if header.has_prefix("conditioner.embedders.1.") or (
        header.has("model.diffusion_model.label_emb.0.0.weight")
        and header.has_prefix("conditioner.embedders.0.transformer.")
    ):
        return "SDXL"
    if header.has_prefix("cond_stage_model.model."):
        return "SD2"
    if header.has_prefix("cond_stage_model.transformer."):
        return "SD1"
    return _width_family(header.context_width("model.diffusion_model.")) or _metadata_family(metadata)


def _lora_family(header: HeaderText, metadata: Mapping[str, Any]) -> str | None:
    if header.has_prefix("lora_te2_", "text_encoder_2.", "lora_te2."):
        return "SDXL"
    return _width_family(header.context_width("")) or _metadata_family(metadata)


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
    """A diffusers pipeline (``model_index.json``) or model (``config.json``) folder, from its configs; else None."""
    path = name or folder
    measured = folder_size(folder) if size is None else size
    if os.path.isfile(os.path.join(folder, "model_index.json")):
        unet = _read_json(os.path.join(folder, "unet", "config.json"))
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
    return None


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
