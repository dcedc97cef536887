"""Model sources: what the user's ``model`` string points at, and loading the base pipeline from it.

Three sources, all loaded by diffusers' own loaders:

* ``FOLDER`` - a local diffusers folder (``model_index.json``);
* ``HUB`` - a Hugging Face repo id: loaded from the first cache that holds it
  complete (the add-on's, then the standard Hugging Face cache: read-only, no
  network), else downloaded into the download cache (with progress) unless
  offline (the hub's rules: ``hub.py``);
* ``SINGLE_FILE`` - one original-layout checkpoint (``.safetensors``), loaded by
  ``from_single_file`` with the diffusers configs of the architecture diffusers
  infers from its keys, taken from the cache folder when present (``single_file.py``).

Only the pipelines in ``SUPPORTED_PIPELINES`` are loaded. Pickle-based weights
(``.ckpt .bin .pt .pth``) can execute code when loaded and are refused unless the
caller allows them (``file_selection.py``). Remote code is never run.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError, ModelNotFoundError
from .file_selection import MODEL_FILE_SUFFIXES, PICKLE_SUFFIXES, folder_listing, pickle_refusal, select_files
from .files import SKIPPED_COMPONENTS, is_repo_id
from .hub import (
    HubFolder,
    ProgressCallback,
    download_patterns,
    lookup_caches,
    resolve_hub_with,
)
from .single_file import single_file_config

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
# Material maps (material_maps.py): each Marigold kind is read only where that kind is asked for.
MARIGOLD_INTRINSICS_PIPELINES = ("MarigoldIntrinsicsPipeline",)
MARIGOLD_NORMALS_PIPELINES = ("MarigoldNormalsPipeline",)
MARIGOLD_DEPTH_PIPELINES = ("MarigoldDepthPipeline",)
MARIGOLD_PIPELINES = MARIGOLD_INTRINSICS_PIPELINES + MARIGOLD_NORMALS_PIPELINES + MARIGOLD_DEPTH_PIPELINES
_MARIGOLD_EXAMPLES = {
    "MarigoldIntrinsicsPipeline": "a Marigold intrinsics model (MarigoldIntrinsicsPipeline, e.g. "
                                  "prs-eth/marigold-iid-appearance-v1-1)",
    "MarigoldNormalsPipeline": "a Marigold normals model (MarigoldNormalsPipeline, e.g. prs-eth/marigold-normals-v1-1)",
    "MarigoldDepthPipeline": "a Marigold depth model (MarigoldDepthPipeline, e.g. prs-eth/marigold-depth-v1-1)",
}
REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_KNOWN_LIBRARIES = ("diffusers", "transformers", "stable_diffusion")


@dataclass(frozen=True)
class ModelSource:
    """A classified ``model`` string.

    ``kind`` is ``FOLDER``, ``HUB`` or ``SINGLE_FILE``; ``location`` an absolute path or a repo id.
    """

    kind: str
    location: str


def looks_like_path(text: str) -> bool:
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
        raise pickle_refusal(f"The checkpoint {path.name}")
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
    if looks_like_path(text):
        raise ModelNotFoundError(
            f"There is no model file or folder at {path}; check the path (Blender-relative '//' paths must be "
            "made absolute), or give a Hugging Face repo id such as 'org/name'."
        )
    if is_repo_id(text):
        return ModelSource("HUB", text)
    raise ModelNotFoundError(
        f"{text!r} is neither an existing file or folder nor a Hugging Face repo id such as 'org/name'."
    )


# --- which pipelines this engine runs -------------------------------------------------------------


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
        if len(pipelines) == 1 and pipelines[0] in _MARIGOLD_EXAMPLES:
            raise EngineError(
                f"{name} is a {cls}, not {_MARIGOLD_EXAMPLES[pipelines[0]]}; choose one of those for this map."
            )
        if pipelines == UPSCALER_PIPELINES:
            raise EngineError(
                f"{name} is a {cls}, not an x4 upscaler (StableDiffusionUpscalePipeline, e.g. "
                "stabilityai/stable-diffusion-x4-upscaler); pick one as the upscaler model, or upscale with the "
                "Tiled Diffusion method and your own model."
            )
        hint = (" It is an upscaler: choose it as Upscale's x4 upscaler model instead."
                if cls in UPSCALER_PIPELINES else "")
        if cls in MARIGOLD_PIPELINES:
            hint = " It makes material maps: choose it as a material-map model instead."
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


def read_index(folder: Path) -> dict[str, Any]:
    with open(folder / "model_index.json", encoding="utf-8") as f:
        index: dict[str, Any] = json.load(f)
    return index


# --- a repo id's pipeline: from a cache, else downloaded ------------------------------------------


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
    return download_patterns(repo_id, list(selection.files), cache_dir, on_progress, cancel_event)


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
    return resolve_hub_with(
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


# --- loading --------------------------------------------------------------------------------------


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
    if index.get("_class_name") in MARIGOLD_PIPELINES:
        import diffusers

        kwargs.pop("requires_safety_checker", None)
        return getattr(diffusers, index["_class_name"]).from_pretrained(str(folder), **kwargs)
    return AutoPipelineForText2Image.from_pretrained(str(folder), **kwargs)


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
