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
``StableDiffusionDepth2ImgPipeline`` (TXT2IMG at strength 1). ``task_arguments`` gives the arguments
each task takes (input image, mask, strength, control image); ``check_request_fits`` what only the
loaded model can refuse.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .families import ModelFamily
from .request import GenerationRequest

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


def runs_lcm(pipe: Any) -> bool:
    """An LCM pipeline: it takes no negative prompt (no unconditional pass) and steps with the LCM scheduler."""
    return "negative_prompt" not in inspect.signature(pipe.__call__).parameters


def takes_reference(task: str) -> bool:
    """Can the pipeline of ``task`` take a reference image (IP-Adapter)? Every one does (``IPAdapterMixin``) but
    SD 2 depth-to-image's."""
    return task != "DEPTH2IMG"


def runs_guidance(pipe: Any, guidance_scale: float) -> bool:
    """Will ``pipe`` run an unconditional pass at ``guidance_scale``? diffusers' own rule for its class (its
    ``do_classifier_free_guidance``: LCM pipelines never; some ControlNet pipelines ignore a guidance embedding)."""
    import types

    rule = getattr(type(pipe), "do_classifier_free_guidance", None)
    if not isinstance(rule, property) or rule.fget is None:
        return guidance_scale > 1
    return bool(rule.fget(types.SimpleNamespace(_guidance_scale=guidance_scale, unet=pipe.unet)))


def check_request_fits(request: GenerationRequest, family: ModelFamily, name: str) -> None:
    """What only the loaded model (``name``, of ``family``) can tell: an SD 2 depth model needs a depth image
    and cannot inpaint.

    Raises:
        ValueError: naming the field to change.
    """
    if not family.depth:
        return
    if request.control != "DEPTH":
        raise ValueError(
            f"control must be DEPTH for {name}: it is an SD 2 depth model and paints from the depth image "
            "(control_image); set control to DEPTH, or choose another model."
        )
    if request.mode == "INPAINT":
        raise ValueError(f"mode INPAINT is not available with the SD 2 depth model {name}; use TXT2IMG or IMG2IMG.")
    assert request.control_image is not None  # validated with control DEPTH
    if float(np.ptp(request.control_image[..., 0])) == 0.0:
        raise ValueError(
            "control_image is one flat value everywhere; the SD 2 depth model needs depth that varies "
            "(near = white, background black)."
        )


def task_arguments(
    request: GenerationRequest, task: str, mask: np.ndarray | None, *, controlled: bool
) -> dict[str, Any]:
    """The pipeline arguments that depend on the task: input image, mask, strength, size, control image."""
    import torch

    height, width = request.height, request.width
    init = request.init_image
    rgb = np.ascontiguousarray(init[None, :, :, :3]) if init is not None else None
    grey = np.full((1, height, width, 3), 0.5, dtype=np.float32)  # the unused input of a from-scratch run
    kwargs: dict[str, Any] = {}
    if task == "DEPTH2IMG":
        image = rgb if request.mode == "IMG2IMG" else grey
        assert request.control_image is not None  # checked by check_request_fits
        kwargs["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
        kwargs["depth_map"] = torch.from_numpy(np.ascontiguousarray(request.control_image[None, :, :, 0]))
        kwargs["strength"] = float(request.strength) if request.mode == "IMG2IMG" else 1.0
    elif task == "INPAINT":
        # A dedicated inpainting model runs TXT2IMG/IMG2IMG too: the whole frame masked.
        if mask is None:
            mask = np.ones((height, width), dtype=np.float32)
        kwargs["image"] = rgb if request.mode != "TXT2IMG" else grey
        kwargs["mask_image"] = torch.from_numpy(np.ascontiguousarray(mask[None, None]))
        kwargs["strength"] = float(request.strength) if request.mode != "TXT2IMG" else 1.0
        kwargs["height"], kwargs["width"] = height, width
    elif task == "IMG2IMG":
        kwargs["image"] = rgb
        kwargs["strength"] = float(request.strength)
    else:
        kwargs["height"], kwargs["width"] = height, width
    if controlled:
        assert request.control_image is not None  # validated
        control = np.ascontiguousarray(request.control_image[None])
        kwargs["image" if task == "TXT2IMG" else "control_image"] = control
        kwargs["controlnet_conditioning_scale"] = float(request.control_strength)
    return kwargs
