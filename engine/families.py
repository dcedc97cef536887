"""Model family detection from a model's own configs (never from its name)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAMILIES = ("SD1", "SD2", "SDXL")
INPAINTING_CHANNELS = 9  # UNet input: 4 latent + 1 mask + 4 masked-image latent channels
DEPTH_CHANNELS = 5  # UNet input: 4 latent + 1 depth channel (stabilityai/stable-diffusion-2-depth)
# Text-feature width (cross-attention dimension) of each family's real models: LoRAs are told by it.
CROSS_ATTENTION_WIDTHS = {768: "SD1", 1024: "SD2", 2048: "SDXL"}


@dataclass(frozen=True)
class ModelFamily:
    """What kind of Stable Diffusion a model is.

    Attributes:
        name: ``SD1``, ``SD2`` or ``SDXL``.
        prediction_type: what the UNet predicts (``epsilon``, ``v_prediction``, ``sample``).
        few_step: distilled for a handful of steps (LCM, turbo, lightning); such
            models are run with guidance <= 1, i.e. without an unconditional pass.
        inpainting: a dedicated inpainting model (9-channel UNet: latents + mask + masked image);
            every mode runs through the inpaint pipeline.
        depth: an SD-2 depth model (5-channel UNet: latents + depth); it needs a depth image
            (``control="DEPTH"``) and runs through ``StableDiffusionDepth2ImgPipeline``.
    """

    name: str
    prediction_type: str = "epsilon"
    few_step: bool = False
    inpainting: bool = False
    depth: bool = False

    @property
    def label(self) -> str:
        parts = [self.name]
        if self.prediction_type == "v_prediction":
            parts.append("v-prediction")
        if self.few_step:
            parts.append("few-step")
        if self.inpainting:
            parts.append("inpainting")
        if self.depth:
            parts.append("depth")
        return " ".join(parts)


def detect_family(unet_config: Mapping[str, Any], scheduler_config: Mapping[str, Any]) -> ModelFamily:
    """Read the family from the UNet and scheduler configs.

    * SDXL: the UNet takes pooled text + size conditioning (``addition_embed_type == "text_time"``).
    * SD2: OpenCLIP-H text features (``cross_attention_dim == 1024``) or the SD-2 UNet's
      linear transformer projections; SD1 otherwise.
    * few-step: an LCM scheduler, a guidance-embedding UNet (``time_cond_proj_dim``) or
      the ``trailing`` timestep spacing that turbo/lightning models ship with.
    * inpainting / depth: the UNet's input channels (9: latents + mask + masked image latents;
      5: latents + depth).
    """
    if unet_config.get("addition_embed_type") == "text_time":
        name = "SDXL"
    elif unet_config.get("cross_attention_dim") == 1024 or unet_config.get("use_linear_projection"):
        name = "SD2"
    else:
        name = "SD1"
    few_step = (
        scheduler_config.get("_class_name") == "LCMScheduler"
        or unet_config.get("time_cond_proj_dim") is not None
        or scheduler_config.get("timestep_spacing") == "trailing"
    )
    return ModelFamily(
        name=name,
        prediction_type=str(scheduler_config.get("prediction_type", "epsilon")),
        few_step=bool(few_step),
        inpainting=unet_config.get("in_channels") == INPAINTING_CHANNELS,
        depth=unet_config.get("in_channels") == DEPTH_CHANNELS,
    )


def family_from_folder(folder: str) -> ModelFamily | None:
    """The family of a diffusers folder from its two small config files (no weights read); None if unreadable."""
    import json
    import os

    try:
        with open(os.path.join(folder, "unet", "config.json"), encoding="utf-8") as f:
            unet = json.load(f)
        with open(os.path.join(folder, "scheduler", "scheduler_config.json"), encoding="utf-8") as f:
            scheduler = json.load(f)
    except (OSError, ValueError):
        return None
    return detect_family(unet, scheduler)


def recommended_settings(family: ModelFamily) -> dict[str, Any]:
    """What a family is made for, as scene settings (``width``, ``height``, ``steps``, ``guidance_scale``, ``scheduler``).

    SDXL is trained at 1024², SD 2.x v-prediction at 768², the rest at 512². Few-step
    models (LCM, turbo, lightning) want 1-4 steps without guidance; the LCM scheduler
    runs them all. Others: 25 steps, guidance 7.5, DPM++ 2M.
    """
    size = native_size(family.name, family.prediction_type)
    if family.few_step:
        sampling = {"steps": 4, "guidance_scale": 1.0, "scheduler": "LCM"}
    else:
        sampling = {"steps": 25, "guidance_scale": 7.5, "scheduler": "DPM_SOLVER_MULTISTEP"}
    return {"width": size, "height": size, **sampling}


def native_size(name: str, prediction_type: str = "epsilon") -> int:
    """The side of the square images a family is trained at: SDXL 1024, SD 2.x v-prediction 768 (SD 2 base,
    epsilon, is 512), SD 1.x 512."""
    return 1024 if name == "SDXL" else 768 if name == "SD2" and prediction_type == "v_prediction" else 512


def smallest_grid_cell(name: str, prediction_type: str = "epsilon") -> int:
    """The smallest side of a Whole Object grid cell a family still draws an object view in: half its native
    size (256 px for SD 1.x and SD 2 base, 384 for SD 2.x v-prediction, 512 for SDXL)."""
    return native_size(name, prediction_type) // 2
