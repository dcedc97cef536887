"""Single-file checkpoints: the architecture diffusers infers from their keys, and its configs.

An original-layout checkpoint carries weights but no diffusers configs; ``from_single_file``
takes those from the repo of the architecture it infers, found in the caches (or a few KB
downloaded) here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import EngineError, ModelNotFoundError
from .hub import cached_snapshot, hub_errors, hub_offline, lookup_caches, offline_reason

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
    ``hub.lookup_caches`` order; a download goes to ``cache_dir``.
    """
    caches = lookup_caches(cache_dir, read_cache_dirs)
    for cache in caches:
        folder = cached_snapshot(repo_id, cache)
        if folder is not None and any(next(folder.glob(pattern), None) for pattern in patterns):
            return folder
    if hub_offline(offline):
        raise ModelNotFoundError(
            f"{needed_by} needs the configuration files of {repo_id} (a few KB), which are not in the model "
            f"caches ({', '.join(caches)}) and {offline_reason(offline)}; go online once so they can be "
            "downloaded."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns))
    except hub_errors() as error:
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
