"""Which diffusers pipeline runs a request, built on the loaded model's components (``from_pipe``).

Every pipeline here shares the loaded model's UNet, VAE and text encoders: ``from_pipe`` builds
a new pipeline object around the same modules, and a ControlNet is the only extra component.

| task      | no control                              | ControlNet                                      |
|-----------|-----------------------------------------|-------------------------------------------------|
| TXT2IMG   | the loaded pipeline                     | ``StableDiffusion[XL]ControlNetPipeline``       |
| IMG2IMG   | ``AutoPipelineForImage2Image``          | ``StableDiffusion[XL]ControlNetImg2ImgPipeline`` |
| INPAINT   | ``StableDiffusion[XL]InpaintPipeline``  | ``StableDiffusion[XL]ControlNetInpaintPipeline`` |

A dedicated inpainting model (9-channel UNet) runs every mode as INPAINT (TXT2IMG/IMG2IMG with
an all-white mask); an SD 2 depth model runs every mode through its own loaded
``StableDiffusionDepth2ImgPipeline`` (TXT2IMG at strength 1).
"""

from __future__ import annotations

from typing import Any

from .families import ModelFamily

TASKS = ("TXT2IMG", "IMG2IMG", "INPAINT", "DEPTH2IMG")


def task_for(family: ModelFamily, mode: str) -> str:
    """The pipeline task a request ``mode`` runs as on a model of ``family``."""
    if family.depth:
        return "DEPTH2IMG"
    if family.inpainting:
        return "INPAINT"
    return mode


def pipeline_class(family: ModelFamily, task: str, controlled: bool) -> Any:
    """The diffusers class for ``task`` (None: the loaded pipeline itself; see the module table)."""
    import diffusers

    xl = "XL" if family.name == "SDXL" else ""
    if task == "DEPTH2IMG" or (task == "TXT2IMG" and not controlled):
        return None
    if task == "IMG2IMG" and not controlled:
        return diffusers.AutoPipelineForImage2Image
    suffix = {"TXT2IMG": "", "IMG2IMG": "Img2Img", "INPAINT": "Inpaint"}[task]
    name = f"StableDiffusion{xl}{'ControlNet' if controlled else ''}{suffix}Pipeline"
    return getattr(diffusers, name)


def build(base: Any, family: ModelFamily, task: str, controlnet: Any | None) -> Any:
    """The pipeline for ``task`` on ``base``'s components, with ``controlnet`` when given."""
    cls = pipeline_class(family, task, controlnet is not None)
    if cls is None:
        return base
    extra = {"controlnet": controlnet} if controlnet is not None else {}
    # from_pipe casts the (shared) components to float32 unless told the dtype: keep the model's.
    pipe = cls.from_pipe(base, dtype=base.unet.dtype, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe
