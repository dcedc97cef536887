"""ControlNet models: from the ``control_model`` string to a loaded ``ControlNetModel``.

Sources work like base models (``sources.py``): a Hugging Face repo id (downloaded with
progress unless offline, then read from the cache), a local diffusers folder (``config.json``
+ weights) or a single ``.safetensors`` file (``from_single_file`` with the configs diffusers
infers from its keys, taken from the cache). Pickle weights are refused unless allowed.
A ControlNet made for another family than the model is refused before it is used.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from . import control, file_selection, hub, single_file, sources
from .errors import EngineError, ModelNotFoundError
from .families import ModelFamily, detect_family

log = logging.getLogger(__name__)

# diffusers' single-file model types for ControlNets -> the family they condition.
_SINGLE_FILE_CONTROLNET_TYPES = ("controlnet", "controlnet_xl_large", "controlnet_xl_mid", "controlnet_xl_small")


def resolve_source(control_model: str, family: ModelFamily, control_kind: str) -> str:
    """The ControlNet to use: ``control_model`` if set, else the family's default for ``control_kind``.

    Raises:
        ValueError: no ``control_model`` and no default for this family (names ``control_model``).
    """
    if control_model.strip():
        return control_model.strip()
    default = control.default_control_model(family.name, control_kind)
    if default is None:
        raise ValueError(
            f"control_model is empty and {control.no_default_reason(family.name, control_kind)}; "
            f"set control_model to a {family.name} {control_kind.lower()} ControlNet (Hugging Face repo id, "
            "diffusers folder or .safetensors file)."
        )
    return default


def classify(control_model: str, *, allow_pickle: bool) -> sources.ModelSource:
    """Like ``sources.classify``, but a folder is a diffusers *model* folder (``config.json``)."""
    text = control_model.strip()
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a ControlNet folder (it has no config.json); choose the folder that contains "
                "config.json and the weights, a .safetensors file or a Hugging Face repo id (control_model)."
            )
        return sources.ModelSource("FOLDER", str(path.resolve()))
    return sources.classify(text, allow_pickle=allow_pickle)


def load(
    source: sources.ModelSource,
    *,
    dtype: Any,
    cache_dir: str | None,
    offline: bool,
    allow_pickle: bool,
    prefer_variant: str | None,
    read_cache_dirs: tuple[str, ...] | None = None,
    on_progress: Any = None,
    cancel_event: threading.Event | None = None,
) -> Any:
    """Read a ControlNet on the CPU in ``dtype``."""
    from diffusers import ControlNetModel

    if source.kind == "SINGLE_FILE":
        config = single_file_config(
            Path(source.location), cache_dir=cache_dir, offline=offline, read_cache_dirs=read_cache_dirs
        )
        return ControlNetModel.from_single_file(
            source.location, config=str(config), torch_dtype=dtype, local_files_only=True
        )
    folder = Path(source.location)
    name = source.location

    def select(filenames: list[str]) -> list[str]:
        return list(
            file_selection.select_model_files(
                filenames, name=name, prefer_variant=prefer_variant, allow_pickle=allow_pickle
            ).files
        )

    if source.kind == "HUB":
        folder = hub.resolve_hub_files(
            source.location,
            select,
            cache_dir=cache_dir,
            offline=offline,
            read_cache_dirs=read_cache_dirs,
            on_progress=on_progress,
            cancel_event=cancel_event,
        )
    selection = file_selection.select_model_files(
        file_selection.folder_listing(folder), name=name, prefer_variant=prefer_variant, allow_pickle=allow_pickle
    )
    missing = [f for f in selection.files if not (folder / f).exists()]
    if missing:
        raise ModelNotFoundError(f"The ControlNet {name} is incomplete ({missing[0]} is missing); download it again.")
    return ControlNetModel.from_pretrained(
        str(folder),
        torch_dtype=dtype,
        local_files_only=True,
        use_safetensors=None if allow_pickle else True,
        variant=selection.variant,
    )


def single_file_config(
    path: Path, *, cache_dir: str | None, offline: bool, read_cache_dirs: tuple[str, ...] | None = None
) -> Path:
    """The diffusers config folder for a single-file ControlNet (the architecture diffusers infers from its keys)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS, infer_diffusers_model_type

    shapes = single_file.checkpoint_shapes(path)
    model_type = infer_diffusers_model_type(shapes)
    if model_type not in _SINGLE_FILE_CONTROLNET_TYPES:
        raise EngineError(
            f"{path.name} is not a ControlNet (diffusers reads it as a '{model_type}' checkpoint); choose a "
            "ControlNet .safetensors file for control_model."
        )
    repo_id = DIFFUSERS_DEFAULT_PIPELINE_PATHS[model_type]["pretrained_model_name_or_path"]
    return single_file.config_snapshot(repo_id, path.name, ["config.json"], cache_dir=cache_dir,
                                       offline=offline, read_cache_dirs=read_cache_dirs)


def check_family(controlnet: Any, unet: Any, model_family: ModelFamily, name: str) -> None:
    """Refuse a ControlNet made for another model family than ``unet``'s.

    The ControlNet's residuals are added to the UNet's: its text-feature width (cross-attention
    dimension) and SDXL size conditioning must match the model's.

    Raises:
        EngineError: naming both families and ``control_model``.
    """
    own = detect_family(dict(controlnet.config), {})
    width = controlnet.config.cross_attention_dim
    unet_width = unet.config.cross_attention_dim
    if own.name != model_family.name or width != unet_width:
        raise EngineError(
            f"The ControlNet {name} is made for {own.name} models (text features {width} wide), but the model "
            f"is {model_family.name} ({unet_width} wide); set control_model to a {model_family.name} ControlNet, "
            "or leave it empty for the default."
        )
