"""Model sources: what the user's ``model`` string points at, where its files are, how to load them.

Three sources, all loaded by diffusers' own loaders:

* ``FOLDER`` - a local diffusers folder (``model_index.json``);
* ``HUB`` - a Hugging Face repo id: loaded from the first cache that holds it
  complete (the add-on's, then the standard Hugging Face cache: read-only, no
  network), else downloaded into the download cache (with progress) unless
  offline;
* ``SINGLE_FILE`` - one original-layout checkpoint (``.safetensors``), loaded by
  ``from_single_file`` with the diffusers configs of the architecture diffusers
  infers from its keys, taken from the cache folder when present.

Pickle-based weights (``.ckpt .bin .pt .pth``) can execute code when loaded and
are refused unless the caller allows them. Remote code is never run.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError, GenerationCancelled, ModelNotFoundError, UnsafeModelFormatError
from .files import SKIPPED_COMPONENTS, WEIGHT, WEIGHT_INDEX, FileSelection, FileSelectionError, is_repo_id
from .files import select_files as _select_files
from .request import ProgressEvent

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
MODEL_FILE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
SUPPORTED_PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "LatentConsistencyModelPipeline",
    "LatentConsistencyModelImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",  # dedicated inpainting models (9-channel UNet)
    "StableDiffusionXLInpaintPipeline",
    "StableDiffusionDepth2ImgPipeline",  # SD 2 depth (5-channel UNet); its depth comes from the request
)
DEPTH_PIPELINE = "StableDiffusionDepth2ImgPipeline"
# The x4 upscaler is no base model: only Upscale's dedicated-upscaler method loads it (upscale_x4.py).
UPSCALER_PIPELINES = ("StableDiffusionUpscalePipeline",)
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_KNOWN_LIBRARIES = ("diffusers", "transformers", "stable_diffusion")
# diffusers' model-type names for checkpoints this engine runs (see single_file_utils).
SINGLE_FILE_TYPES = {
    "v1": "StableDiffusionPipeline",
    "v2": "StableDiffusionPipeline",
    "xl_base": "StableDiffusionXLPipeline",
    "inpainting": "StableDiffusionInpaintPipeline",
    "inpainting_v2": "StableDiffusionInpaintPipeline",
    "xl_inpaint": "StableDiffusionXLInpaintPipeline",
}
CONFIG_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt"]
DOWNLOAD_REPORT_INTERVAL = 0.25  # seconds between download progress events

ProgressCallback = Callable[[ProgressEvent], None]


def _pickle_refusal(what: str) -> UnsafeModelFormatError:
    return UnsafeModelFormatError(
        f"{what} is stored in a pickle format (.ckpt/.bin/.pt/.pth), which can run arbitrary code on this "
        "computer when loaded; use a .safetensors version of the model, or allow pickle weights in the "
        "preferences only for files you trust."
    )


@dataclass(frozen=True)
class ModelSource:
    """A classified ``model`` string.

    ``kind`` is ``FOLDER``, ``HUB`` or ``SINGLE_FILE``; ``location`` an absolute path or a repo id.
    """

    kind: str
    location: str


def _looks_like_path(text: str) -> bool:
    return (
        os.path.isabs(text)
        or text.startswith(("~", ".", "//", "\\"))
        or "\\" in text
        or text.count("/") != 1
        or text.lower().endswith(MODEL_FILE_SUFFIXES)
    )


def classify(model: str, *, allow_pickle: bool) -> ModelSource:
    """Decide what ``model`` is without loading anything (only ``stat`` calls)."""
    text = model.strip()
    path = Path(os.path.expanduser(text))
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise _pickle_refusal(f"The checkpoint {path.name}")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a diffusers model folder (it has no model_index.json); choose the folder that "
                "contains model_index.json, or a single .safetensors checkpoint."
            )
        return ModelSource("FOLDER", str(path.resolve()))
    if path.is_file():
        if suffix not in MODEL_FILE_SUFFIXES:
            raise ModelNotFoundError(
                f"{path.name} is not a model checkpoint; choose a .safetensors file, a diffusers folder or a "
                "Hugging Face repo id."
            )
        return ModelSource("SINGLE_FILE", str(path.resolve()))
    if _looks_like_path(text):
        raise ModelNotFoundError(
            f"There is no model file or folder at {path}; check the path (Blender-relative '//' paths must be "
            "made absolute), or give a Hugging Face repo id such as 'org/name'."
        )
    if is_repo_id(text):
        return ModelSource("HUB", text)
    raise ModelNotFoundError(
        f"{text!r} is neither an existing file or folder nor a Hugging Face repo id such as 'org/name'."
    )


# --- which files a pipeline needs --------------------------------------------------------------------


def check_pipeline_index(index: dict[str, Any], name: str, pipelines: Sequence[str] = SUPPORTED_PIPELINES) -> None:
    """Refuse pipelines this engine does not run, before any weights are read.

    ``pipelines``: the pipeline classes accepted here - the base models (default) or ``UPSCALER_PIPELINES``.
    """
    cls = index.get("_class_name")
    if not isinstance(cls, str):
        raise EngineError(
            f"{name} needs its own pipeline code, and Latent Textures never runs code downloaded with a model; "
            "pick a standard Stable Diffusion or SDXL model."
        )
    if cls not in pipelines:
        if pipelines == UPSCALER_PIPELINES:
            raise EngineError(
                f"{name} is a {cls}, not an x4 upscaler (StableDiffusionUpscalePipeline, e.g. "
                "stabilityai/stable-diffusion-x4-upscaler); pick one as the upscaler model, or upscale with the "
                "Tiled Diffusion method and your own model."
            )
        hint = (" It is an upscaler: choose it as Upscale's x4 upscaler model instead."
                if cls in UPSCALER_PIPELINES else "")
        raise EngineError(
            f"{name} is a {cls}; Latent Textures runs Stable Diffusion 1.x/2.x, SDXL and LCM text-to-image, "
            "inpainting and SD 2 depth models." + hint
        )
    for component, value in index.items():
        if component.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        if component not in SKIPPED_COMPONENTS and value[0] not in _KNOWN_LIBRARIES:
            raise EngineError(
                f"{name} uses custom code for its {component} ({value[0]}.{value[1]}), which Latent Textures never "
                "runs; pick a standard Stable Diffusion or SDXL model."
            )
    missing = [c for c in REQUIRED_COMPONENTS if not (isinstance(index.get(c), list) and index[c][0] is not None)]
    if missing:
        raise EngineError(
            f"{name} has no {', '.join(missing)} (is it an SDXL refiner or a partial model?); pick a full base model."
        )


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
            raise _pickle_refusal(f"The {error.component} of {name}") from None
        if error.kind == "no_weights":
            raise ModelNotFoundError(str(error)) from None
        raise EngineError(str(error)) from None


def read_index(folder: Path) -> dict[str, Any]:
    with open(folder / "model_index.json", encoding="utf-8") as f:
        index: dict[str, Any] = json.load(f)
    return index


def folder_listing(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


# --- Hugging Face hub --------------------------------------------------------------------------------


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the hub could not be reached or answered badly" (not: disk full, bad model)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    errors: list[type[BaseException]] = [
        HfHubHTTPError,
        OfflineModeIsEnabled,
        LocalEntryNotFoundError,
        ConnectionError,
        TimeoutError,
    ]
    # The HTTP client's own transport errors (which client depends on the huggingface_hub version).
    for module_name, error_name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(module_name), error_name))
    return tuple(errors)


def hub_offline(offline: bool) -> bool:
    """Offline if asked, or if ``HF_HUB_OFFLINE`` is set in the environment (Blender's offline mode may set it)."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return offline or env in ("1", "ON", "YES", "TRUE")


def _offline_reason(offline: bool) -> str:
    return "offline mode is on" if offline else "HF_HUB_OFFLINE is set in the environment"


def _cache_label(cache_dir: str | None) -> str:
    from huggingface_hub import constants

    return cache_dir or constants.HF_HUB_CACHE


def cached_snapshot(repo_id: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id``'s main revision, or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None


def lookup_caches(cache_dir: str | None, read_cache_dirs: Sequence[str] | None) -> list[str]:
    """The caches a repo id is looked up in, in order: ``read_cache_dirs`` (None: the download cache, then
    the standard Hugging Face cache), with the download cache ``cache_dir`` last when not among them."""
    from huggingface_hub import constants

    download = cache_dir or constants.HF_HUB_CACHE
    wanted = list(read_cache_dirs) if read_cache_dirs is not None else [download, constants.HF_HUB_CACHE]
    wanted.append(download)
    return list(dict.fromkeys(os.path.normpath(os.path.expanduser(d)) for d in wanted if d))


@dataclass(frozen=True)
class HubFolder:
    """Where a repo id's pipeline was found: its snapshot folder, the cache holding it, and whether it was
    downloaded just now."""

    folder: Path
    cache_dir: str
    downloaded: bool = False


def find_cached_pipeline(
    repo_id: str, cache_dirs: Iterable[str], *, prefer_variant: str | None, allow_pickle: bool
) -> HubFolder | None:
    """The first cache whose snapshot of ``repo_id`` holds every file the pipeline needs (read-only: only
    ``stat`` calls and ``model_index.json``); None when no cache has it complete."""
    from huggingface_hub import try_to_load_from_cache

    for cache_dir in cache_dirs:
        index_file = try_to_load_from_cache(repo_id, "model_index.json", cache_dir=cache_dir)  # refs/main's snapshot
        if isinstance(index_file, str) and _holds_a_pipeline(Path(index_file).parent, repo_id, prefer_variant,
                                                             allow_pickle):
            return HubFolder(Path(index_file).parent, cache_dir)
    return None


class _DownloadWatch:
    """Reports download progress as ProgressEvent(stage="DOWNLOAD") and aborts downloads on cancel.

    huggingface_hub updates its progress bars from every download thread; the bar
    class made here ignores what they display and, at most every ``interval``
    seconds, measures the bytes that landed in the repo's ``blobs`` folder. Once a
    cancel is seen every further update raises, so each download thread stops.
    """

    def __init__(
        self,
        blobs: Path,
        total: int,
        on_progress: ProgressCallback | None,
        cancel_event: threading.Event | None,
        interval: float | None = None,
    ) -> None:
        self.blobs = blobs
        self.total = total
        self.on_progress = on_progress
        self.cancel_event = cancel_event
        self.interval = DOWNLOAD_REPORT_INTERVAL if interval is None else interval
        self.cancelled = False
        self._start = self._bytes()
        self._last = 0.0
        self._lock = threading.Lock()

    def _bytes(self) -> int:
        try:
            return sum(entry.stat().st_size for entry in os.scandir(self.blobs) if entry.is_file())
        except FileNotFoundError:
            return 0

    def poll(self, force: bool = False) -> None:
        if self.cancelled or (self.cancel_event is not None and self.cancel_event.is_set()):
            self.cancelled = True
            raise GenerationCancelled()
        now = time.monotonic()
        if self.on_progress is None or (not force and now - self._last < self.interval):
            return
        with self._lock:
            self._last = now
            done = min(max(self._bytes() - self._start, 0), self.total)
            try:
                self.on_progress(ProgressEvent(step=done, total=self.total, preview=None, stage="DOWNLOAD"))
            except GenerationCancelled:
                self.cancelled = True
                raise

    def bar_class(self) -> type:
        from tqdm.auto import tqdm

        watch = self

        class _Bar(tqdm):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                watch.poll()
                return None

        return _Bar


def download_pipeline(
    repo_id: str,
    *,
    cache_dir: str | None,
    prefer_variant: str | None,
    allow_pickle: bool,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
    pipelines: Sequence[str] = SUPPORTED_PIPELINES,
) -> Path:
    """Download what the pipeline needs into the cache; return the snapshot folder."""
    from huggingface_hub import HfApi, hf_hub_download

    info = HfApi().model_info(repo_id)
    filenames = [s.rfilename for s in info.siblings or []]
    if "model_index.json" not in filenames:
        raise EngineError(
            f"{repo_id} is not a diffusers model (it has no model_index.json); for a single-file checkpoint, "
            "download its .safetensors and choose that file."
        )
    index_file = hf_hub_download(repo_id, "model_index.json", cache_dir=cache_dir)
    with open(index_file, encoding="utf-8") as f:
        index = json.load(f)
    check_pipeline_index(index, repo_id, pipelines)
    selection = select_files(filenames, index, name=repo_id, prefer_variant=prefer_variant, allow_pickle=allow_pickle)
    return _download_patterns(repo_id, list(selection.files), cache_dir, on_progress, cancel_event)


def _holds_a_pipeline(folder: Path, name: str, prefer_variant: str | None, allow_pickle: bool) -> bool:
    """Every file ``select_files`` picks from ``folder``'s own listing is there (a finished download)."""
    try:
        index = read_index(folder)
        selection = select_files(
            folder_listing(folder), index, name=name, prefer_variant=prefer_variant, allow_pickle=allow_pickle
        )
    except (OSError, ValueError, EngineError):
        return False
    return all((folder / f).is_file() for f in selection.files)


def resolve_hub(
    repo_id: str,
    *,
    cache_dir: str | None,
    offline: bool,
    prefer_variant: str | None,
    allow_pickle: bool,
    read_cache_dirs: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
    pipelines: Sequence[str] = SUPPORTED_PIPELINES,
) -> HubFolder:
    """Find ``repo_id`` (a diffusers pipeline) complete in a cache (offline, read-only), else download it
    into ``cache_dir``.

    The caches are read in the order ``lookup_caches`` gives before anything is asked of the hub, so a
    model that any of them holds is never downloaded again.
    """
    caches = lookup_caches(cache_dir, read_cache_dirs)
    found = find_cached_pipeline(repo_id, caches, prefer_variant=prefer_variant, allow_pickle=allow_pickle)
    if found is not None:
        return found
    return _resolve_hub_with(
        repo_id,
        caches=caches,
        cache_dir=cache_dir,
        offline=offline,
        offline_fallback=False,  # no cache has it complete: loading a partial one would only fail later
        download=lambda: download_pipeline(
            repo_id,
            cache_dir=cache_dir,
            prefer_variant=prefer_variant,
            allow_pickle=allow_pickle,
            on_progress=on_progress,
            cancel_event=cancel_event,
            pipelines=pipelines,
        ),
    )


def resolve_hub_files(
    repo_id: str,
    select: Callable[[list[str]], list[str]],
    *,
    cache_dir: str | None,
    offline: bool,
    read_cache_dirs: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel_event: threading.Event | None = None,
) -> Path:
    """Like :func:`resolve_hub` for a repo that is not a pipeline (a ControlNet, a LoRA).

    ``select`` gets the repo's file list and returns the files to download (raising a
    ``EngineError``/``UnsafeModelFormatError`` if none fit). The first cache whose snapshot holds what
    ``select`` picks from it is used without asking the hub; offline, any cached snapshot is.
    """
    caches = lookup_caches(cache_dir, read_cache_dirs)
    for cache in caches:
        folder = cached_snapshot(repo_id, cache)
        if folder is None:
            continue
        try:
            wanted = select(folder_listing(folder))
        except EngineError:
            continue
        if wanted and all((folder / name).exists() for name in wanted):
            return folder
    return _resolve_hub_with(
        repo_id,
        caches=caches,
        cache_dir=cache_dir,
        offline=offline,
        download=lambda: download_files(
            repo_id, select, cache_dir=cache_dir, on_progress=on_progress, cancel_event=cancel_event
        ),
    ).folder


def download_files(
    repo_id: str,
    select: Callable[[list[str]], list[str]],
    *,
    cache_dir: str | None,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> Path:
    """Download the files ``select`` picks from ``repo_id``'s file list, with progress; return the snapshot."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id)
    return _download_patterns(
        repo_id, select([s.rfilename for s in info.siblings or []]), cache_dir, on_progress, cancel_event
    )


def _download_patterns(
    repo_id: str,
    patterns: list[str],
    cache_dir: str | None,
    on_progress: ProgressCallback | None,
    cancel_event: threading.Event | None,
) -> Path:
    from huggingface_hub import snapshot_download

    plan = snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns, dry_run=True)
    total = sum(item.file_size or 0 for item in plan if item.will_download)
    blobs = Path(_cache_label(cache_dir)) / ("models--" + repo_id.replace("/", "--")) / "blobs"
    watch = _DownloadWatch(blobs, total, on_progress, cancel_event)
    if total:
        watch.poll(force=True)
    folder = snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns, tqdm_class=watch.bar_class())
    if total:
        watch.poll(force=True)
    return Path(folder)


def _resolve_hub_with(
    repo_id: str,
    *,
    caches: list[str],
    cache_dir: str | None,
    offline: bool,
    download: Callable[[], Path],
    offline_fallback: bool = True,
) -> HubFolder:
    """The hub rules for every repo: offline -> the caches only; online -> ``download()``, else the caches."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if hub_offline(offline):
        for cache in caches if offline_fallback else ():
            folder = cached_snapshot(repo_id, cache)
            if folder is not None:
                return HubFolder(folder, cache)
        raise ModelNotFoundError(
            f"{repo_id} is not in the model caches ({', '.join(caches)}) and {_offline_reason(offline)}; "
            "go online once (turn off offline mode / allow online access) so it can be downloaded, "
            "or choose a local model folder or .safetensors file."
        )
    try:
        return HubFolder(download(), _cache_label(cache_dir), downloaded=True)
    except _hub_errors() as error:  # includes GatedRepoError and RepositoryNotFoundError
        for cache in caches:
            folder = cached_snapshot(repo_id, cache)
            if folder is not None:
                log.warning("Using the cached %s (%s): the hub could not be asked (%s)", repo_id, cache, error)
                return HubFolder(folder, cache)  # like diffusers: fall back to what is cached
        if isinstance(error, GatedRepoError):
            raise ModelNotFoundError(
                f"{repo_id} is gated: accept its licence on huggingface.co and log in (hf auth login) to download it."
            ) from error
        if isinstance(error, RepositoryNotFoundError):
            raise ModelNotFoundError(
                f"There is no Hugging Face model {repo_id!r} (or it is private); check the repo id."
            ) from error
        raise ModelNotFoundError(
            f"Could not download {repo_id} from huggingface.co ({type(error).__name__}) and it is not cached in "
            f"{', '.join(caches)}; check the internet connection, or choose a local model."
        ) from error


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
        raise _pickle_refusal(name)
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


# --- loading -----------------------------------------------------------------------------------------


def load_folder(
    folder: Path,
    *,
    name: str,
    dtype: Any,
    allow_pickle: bool,
    prefer_variant: str | None,
    pipelines: Sequence[str] = SUPPORTED_PIPELINES,
) -> Any:
    """Load a diffusers folder (local, or a cached hub snapshot) as a text-to-image pipeline
    (an SD 2 depth model as its own ``StableDiffusionDepth2ImgPipeline``, the x4 upscaler as
    ``StableDiffusionUpscalePipeline`` where ``pipelines`` allows it)."""
    from diffusers import AutoPipelineForText2Image, StableDiffusionDepth2ImgPipeline, StableDiffusionUpscalePipeline

    index = read_index(folder)
    check_pipeline_index(index, name, pipelines)
    selection = select_files(
        folder_listing(folder), index, name=name, prefer_variant=prefer_variant, allow_pickle=allow_pickle
    )
    missing = [f for f in selection.files if not (folder / f).exists()]
    if missing:
        raise ModelNotFoundError(
            f"{name} is incomplete ({missing[0]} is missing); download it again or choose another model."
        )
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "local_files_only": True,
        "use_safetensors": None if allow_pickle else True,
        "variant": selection.variant,
        "trust_remote_code": False,
    }
    for component in SKIPPED_COMPONENTS:
        if component in index:
            kwargs[component] = None
    if "requires_safety_checker" in index or "safety_checker" in index:
        kwargs["requires_safety_checker"] = False
    if index.get("_class_name") == DEPTH_PIPELINE:
        kwargs.update(depth_estimator=None, feature_extractor=None)
        return StableDiffusionDepth2ImgPipeline.from_pretrained(str(folder), **kwargs)
    if index.get("_class_name") in UPSCALER_PIPELINES:
        kwargs.pop("requires_safety_checker", None)  # not one of its arguments
        return StableDiffusionUpscalePipeline.from_pretrained(str(folder), **kwargs)
    return AutoPipelineForText2Image.from_pretrained(str(folder), **kwargs)


def checkpoint_shapes(path: Path) -> dict[str, Any]:
    """Checkpoint keys -> tensors; for .safetensors only meta tensors of the right shape (nothing is read).

    That is all diffusers' model-type inference looks at (key names and shapes).
    """
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        shapes: dict[str, Any] = {}
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                shapes[key] = torch.empty(f.get_slice(key).get_shape(), device="meta")
        return shapes
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    return dict(load_single_file_checkpoint(str(path), local_files_only=True))


def config_snapshot(
    repo_id: str,
    needed_by: str,
    patterns: list[str],
    *,
    cache_dir: str | None,
    offline: bool,
    read_cache_dirs: Sequence[str] | None = None,
) -> Path:
    """The cached snapshot of ``repo_id`` holding its configs (``patterns``), downloading only those if needed.

    Single-file checkpoints carry weights but no diffusers configs: diffusers takes those from the
    repo of the architecture it infers from the checkpoint's keys. The caches are read in
    ``lookup_caches`` order; a download goes to ``cache_dir``.
    """
    caches = lookup_caches(cache_dir, read_cache_dirs)
    for cache in caches:
        folder = cached_snapshot(repo_id, cache)
        if folder is not None and any(next(folder.glob(pattern), None) for pattern in patterns):
            return folder
    if hub_offline(offline):
        raise ModelNotFoundError(
            f"{needed_by} needs the configuration files of {repo_id} (a few KB), which are not in the model "
            f"caches ({', '.join(caches)}) and {_offline_reason(offline)}; go online once so they can be "
            "downloaded."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns))
    except _hub_errors() as error:
        raise ModelNotFoundError(
            f"Could not download the configuration files of {repo_id} that {needed_by} needs "
            f"({type(error).__name__}); check the internet connection."
        ) from error


def single_file_config(
    path: Path,
    *,
    cache_dir: str | None,
    offline: bool,
    read_cache_dirs: Sequence[str] | None = None,
) -> tuple[str, Path]:
    """Infer the architecture of a single-file checkpoint; return its pipeline class name and config folder."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS, infer_diffusers_model_type

    shapes = checkpoint_shapes(path)
    if not any(key.startswith("model.diffusion_model.") for key in shapes):
        raise EngineError(
            f"{path.name} has no complete Stable Diffusion model in it (no UNet weights: a LoRA, VAE or embedding "
            "file?); choose a full checkpoint."
        )
    model_type = infer_diffusers_model_type(shapes)
    if model_type not in SINGLE_FILE_TYPES:
        raise EngineError(
            f"{path.name} is a '{model_type}' checkpoint; Latent Textures runs Stable Diffusion 1.x/2.x and SDXL "
            "base and inpainting checkpoints."
        )
    repo_id = DIFFUSERS_DEFAULT_PIPELINE_PATHS[model_type]["pretrained_model_name_or_path"]
    folder = config_snapshot(repo_id, path.name, CONFIG_PATTERNS, cache_dir=cache_dir, offline=offline,
                             read_cache_dirs=read_cache_dirs)
    return SINGLE_FILE_TYPES[model_type], folder


def load_single_file(
    path: Path, *, dtype: Any, cache_dir: str | None, offline: bool, read_cache_dirs: Sequence[str] | None = None
) -> Any:
    """Load a single-file checkpoint through ``from_single_file`` with locally resolved configs."""
    import diffusers

    class_name, config = single_file_config(path, cache_dir=cache_dir, offline=offline, read_cache_dirs=read_cache_dirs)
    pipeline_class = getattr(diffusers, class_name)
    kwargs: dict[str, Any] = {"config": str(config), "dtype": dtype, "local_files_only": True}
    if class_name in ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline"):
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipeline_class.from_single_file(str(path), **kwargs)
