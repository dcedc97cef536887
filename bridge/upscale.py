"""Upscale an image from Blender: what to upscale (checked before anything runs) and where the result goes.

The engine does the work (``engine/upscale.py``) on the worker thread; this
module reads the source on the main thread and writes the new image: a packed
image with the source's recipe plus ``upscale``, optionally put in place of the
source in every material that uses it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..engine import UpscaleRequest
from ..engine.upscale import check_tile_size
from . import pixels, reference, requests, results
from .plan import check_engine_packages, check_no_job_running
from .run import GenerationRun

SEAMLESS_CHOICES = ("AUTO", "NONE", "X", "Y", "BOTH")


@dataclass
class UpscalePlan:
    """Everything checked and read before the engine runs; nothing created yet."""

    request: UpscaleRequest
    options: object
    source_name: str
    source_recipe: dict
    replace_in_materials: bool
    notes: list[str] = field(default_factory=list)
    recorder: object = None  # an upscale records no filmstrip or attention maps
    reference_recipe: dict = field(default_factory=dict)  # the tiles' reference image: the recipe's upscale.reference



def resolve_seamless(choice: str, recipe: dict, image_name: str, notes: list[str]) -> str:
    """``AUTO`` follows the source's recipe; an explicit wrap on a source not made seamless is allowed, and said."""
    if choice not in SEAMLESS_CHOICES:
        raise ValueError(f"seamless must be one of {', '.join(SEAMLESS_CHOICES)}; got {choice!r}")
    recorded = recipe.get("seamless", "NONE")
    if choice == "AUTO":
        return recorded if recorded in SEAMLESS_CHOICES[1:] else "NONE"
    if choice != "NONE" and recorded == "NONE":
        notes.append(f"'{image_name}' was not generated seamless: it is upscaled with wrap-around along "
                     f"{choice} as asked, so any seam it has stays")
    return choice


def prepare(context: bpy.types.Context, image_name: str, factor: int, seamless: str, strength: float,
            replace_in_materials: bool, *, control_model: str = "", tile_size: int = 0,
            method: str = "TILED_DIFFUSION", upscaler_model: str = "", noise_level: int = 20) -> UpscalePlan:
    """Check the request and read the source's pixels. Raises ValueError with a clear message."""
    check_no_job_running()
    settings = context.scene.latent_textures
    image = bpy.data.images.get(image_name) if image_name else settings.result_image
    if image is None:
        what = f"No image named '{image_name}'" if image_name else "No result image yet"
        raise ValueError(f"{what} to upscale: generate one first or name an image")
    if image.size[0] == 0 or image.size[1] == 0:
        raise ValueError(f"Image '{image.name}' has no pixels to upscale")
    check_tile_size(tile_size)
    check_engine_packages()
    recipe = results.recipe_of(image)
    notes: list[str] = []
    axes = resolve_seamless(seamless, recipe, image.name, notes)
    source = pixels.read_display_pixels(image)[..., :3]
    request = UpscaleRequest(
        image=np.ascontiguousarray(np.clip(source, 0.0, 1.0), dtype=np.float32),
        model=requests.resolve_model_path(settings.model),
        prompt=recipe.get("prompt", settings.prompt) or settings.prompt,
        negative_prompt=recipe.get("negative_prompt", settings.negative_prompt),
        factor=factor,
        strength=strength,
        steps=settings.steps,
        guidance_scale=settings.guidance_scale,
        scheduler=settings.scheduler,
        seed=None if settings.use_random_seed else settings.seed,
        seamless=axes,
        control="TILE" if strength > 0 and method == "TILED_DIFFUSION" else "NONE",
        control_model=requests.resolve_model_path(control_model or settings.upscale_control_model),
        tile_size=tile_size,
        method=method,
        upscaler_model=requests.resolve_model_path(upscaler_model),
        noise_level=noise_level,
        loras=requests.loras_from_settings(settings),
    )
    reference_recipe = upscale_reference(settings, request)
    request.validate()
    options = requests.options_from_preferences(context)
    requests.check_upscale_models(request, options)
    return UpscalePlan(request, options, image.name, recipe, replace_in_materials, notes,
                       reference_recipe=reference_recipe)


def upscale_reference(settings, request: UpscaleRequest) -> dict:
    """The scene's Reference Image on ``request``: Tiled Diffusion's tiles follow it; the x4 upscaler takes none,
    which the engine reports and records. Returns what Blender adds to the recipe's ``upscale.reference`` (the
    picture's name and hash; {}: no reference). A picture without pixels raises ValueError before anything runs."""
    if settings.reference_image is None:
        return {}
    read = reference.reference_from_settings(settings)
    request.reference = read.spec
    return read.recipe



class UpscaleRun(GenerationRun):
    """A started upscale: the same job and ticks as a generation, its own result writing.

    It leaves the panel's seed alone (``writes_seed``): only Generate writes back the seed it used.
    """

    writes_seed = False

    def create_image(self, changes: results.Changes, result) -> bpy.types.Image:
        return create_image(changes, self.plan, result)

    def write_targets(self, image: bpy.types.Image) -> list[str]:
        return replace_in_materials(self.plan, image)

    def release_arrays(self) -> None:
        self.plan.request = dataclasses.replace(self.plan.request, image=None, reference=None)


def create_image(changes: results.Changes, plan: UpscalePlan, result) -> bpy.types.Image:
    """The new packed image with the source's recipe + ``upscale``, through ``changes``."""
    recipe = dict(plan.source_recipe)
    recipe.update(result.recipe)
    recipe["upscale"] = dict(result.recipe["upscale"], source=plan.source_name)
    if plan.reference_recipe:  # the tiles': the source's own reference (what made it) stays the recipe's
        reference.add_to_recipe(recipe["upscale"], reference.Reference(None, plan.reference_recipe))
        if "reference" in plan.source_recipe:
            recipe["reference"] = plan.source_recipe["reference"]
        else:
            recipe.pop("reference", None)
    image = changes.new_image(f"{plan.source_name} x{plan.request.factor}", result.image)
    image[results.RECIPE_PROPERTY] = recipe
    image.pack()
    return image


def replace_in_materials(plan: UpscalePlan, image: bpy.types.Image) -> list[str]:
    """When asked: ``image`` in place of the source in every material; what could not be done, as lines."""
    if not plan.replace_in_materials:
        return []
    source = bpy.data.images.get(plan.source_name)
    if source is None:
        return [f"the source '{plan.source_name}' was removed meanwhile: no material was changed"]
    changes = results.Changes()
    for node in image_texture_nodes_using(source):
        changes.set(node, "image", image)
    changes.commit()
    return []


def image_texture_nodes_using(image: bpy.types.Image) -> list[bpy.types.Node]:
    """Every Image Texture node of every material that shows ``image``."""
    return [
        node
        for material in bpy.data.materials
        if material.node_tree is not None
        for node in material.node_tree.nodes
        if node.type == "TEX_IMAGE" and node.image == image
    ]
