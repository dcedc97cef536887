"""Material maps of an image from Blender (issue 30): what to make (checked before anything runs), the job
that makes them (``Engine.material_maps`` on the worker) and where they go (``pbr_wiring``).

A flat texture (targets Image and Material, an artist's photo) gets its maps straight from the engine: its
normals *are* its tangent-space normal map. A PROJECT result's normal map goes through the tangent space of
the surface each pixel shows (``geometry.tangent_normals.pixel_tangent_normals``; the camera and frames are
read on the main thread, the conversion runs on the worker). Height is integrated from the normals of a flat
image; it is refused for PROJECT and Whole Object (a per-view height is normalised per image and would not
agree across views or islands), with that reason.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..engine.material_maps_request import MAP_KINDS, MaterialMapsRequest
from . import pbr_wiring, pixels, requests, results
from .pbr_maps_writer import (HEIGHT_REFUSED, ProjectedSurface, check_maps_models, convert_normals, projected_surface,
                              recorded_camera, settle_names, write_maps)
from .job import GenerationJob, JobEvent
from .plan import check_engine_packages, check_no_job_running
from .run import GenerationRun


@dataclass
class MapsPlan:
    """Everything checked and read before the engine runs; nothing created yet."""

    request: MaterialMapsRequest
    options: object
    source_name: str
    source_recipe: dict
    keep_history: bool
    uv_map: str | None = None
    surface: ProjectedSurface | None = None
    notes: list[str] = field(default_factory=list)
    recorder: object = None


def maps_tuple(maps) -> tuple[str, ...]:
    """The enum-flag set (or any iterable of map names) in the engine's order."""
    chosen = {str(m).upper() for m in maps}
    unknown = chosen - set(MAP_KINDS)
    if unknown:
        raise ValueError(f"maps must name {', '.join(MAP_KINDS)}; got {', '.join(sorted(unknown))}")
    return tuple(kind for kind in MAP_KINDS if kind in chosen)


def maps_request(settings, image: np.ndarray, maps: tuple[str, ...], recipe: dict) -> MaterialMapsRequest:
    """The engine request for ``image`` (display sRGB, top row first) with the scene's models."""
    seamless = recipe.get("seamless", "NONE")
    request = MaterialMapsRequest(
        image=np.ascontiguousarray(np.clip(image[..., :3], 0.0, 1.0), dtype=np.float32),
        maps=maps,
        seamless=seamless if seamless in ("NONE", "X", "Y", "BOTH") else "NONE",
        pbr_model=requests.resolve_model_path(settings.pbr_model),
        normals_model=requests.resolve_model_path(settings.normals_model),
        seed=int(recipe.get("seed", 0)) % 2**31,
    )
    request.validate()
    return request



def prepare(context: bpy.types.Context, image_name: str, maps) -> MapsPlan:
    """Check the request and read the image (and, for a projection, its surface). Raises ValueError."""
    check_no_job_running()
    settings = context.scene.latent_textures
    chosen = maps_tuple(maps)
    if not chosen:
        raise ValueError("No material map chosen: pick Albedo, Roughness, Metallic, Normal or Height")
    image = bpy.data.images.get(image_name) if image_name else settings.result_image
    if image is None:
        what = f"No image named '{image_name}'" if image_name else "No result image yet"
        raise ValueError(f"{what} to make material maps of: generate one first or name an image")
    if image.size[0] == 0 or image.size[1] == 0:
        raise ValueError(f"Image '{image.name}' has no pixels to make material maps of")
    recipe = results.recipe_of(image)
    target = recipe.get("target", "IMAGE")
    if target == "OBJECT":
        raise ValueError(f"'{image.name}' is a Whole Object texture (a UV atlas, not a picture of a surface): "
                         "set Material Maps before Generate to make its maps from the views")
    if target == "PROJECT" and "HEIGHT" in chosen:
        raise ValueError(HEIGHT_REFUSED.format(target="Project from Camera"))
    check_engine_packages()
    request = maps_request(settings, pixels.read_display_pixels(image), chosen, recipe)
    options = requests.options_from_preferences(context)
    check_maps_models(request, options)
    plan = MapsPlan(request, options, image.name, recipe, settings.keep_history)
    users = pbr_wiring.base_color_users(image)
    if not users:
        plan.notes.append(f"'{image.name}' is not any material's Base Color: its maps are made as images only")
    if target == "PROJECT" and "NORMAL" in chosen:
        plan.uv_map, plan.surface = projection_of(context, image, users, recipe)
    return plan


def projection_of(context: bpy.types.Context, image: bpy.types.Image, users: list,
                  recipe: dict) -> tuple[str, ProjectedSurface]:
    """A PROJECT result's UV map and the surface each of its pixels shows: the meshes whose materials show it
    through that UV map, seen from the camera its recipe recorded."""
    if not users:
        raise ValueError(f"'{image.name}' is not any material's Base Color any more: its normal map needs the surface "
                         "it is projected on; make the maps without Normal")
    camera = recorded_camera(recipe, image.size[0], image.size[1])
    uv_maps = {node.inputs["Vector"].links[0].from_node.uv_map for _, node, _ in users
               if node.inputs["Vector"].is_linked and node.inputs["Vector"].links[0].from_node.type == "UVMAP"}
    if camera is None or len(uv_maps) != 1:
        raise ValueError(f"'{image.name}' was projected before the projection's camera was recorded (or is shown "
                         "through several UV maps): its normal map cannot be put in the surface's tangent space; "
                         "make the maps without Normal, or generate it again with Material Maps set")
    uv_map = uv_maps.pop()
    materials = {material for material, _, _ in users}
    objects = [obj for obj in context.scene.objects if obj.type == "MESH" and obj.data.uv_layers.get(uv_map)
               and any(slot.material in materials for slot in obj.material_slots)]
    if not objects:
        raise ValueError(f"No mesh shows '{image.name}' through its UV map '{uv_map}' any more")
    return uv_map, projected_surface(context, objects, uv_map, camera)


class MapsJob(GenerationJob):
    """``Engine.material_maps`` on the worker, then (PROJECT) the normals into the surface's tangent space."""

    def __init__(self, plan: MapsPlan) -> None:
        super().__init__(plan.options, plan.request, previews=False)
        self.total = plan.request.steps or 0  # None: the model's own, known once its first step is reported
        self.surface = plan.surface

    def work(self, engine):
        result = engine.material_maps(self.request, on_progress=self._on_progress, cancel_event=self.cancel_event)
        return convert_normals(result, self.surface)


class MaterialMapsRun(GenerationRun):
    """A started maps run: the same job and ticks as a generation; it writes map images and wiring only
    (``result_image`` and the seed stay as they are)."""

    writes_seed = False

    def make_job(self, plan: MapsPlan) -> GenerationJob:
        return MapsJob(plan)

    def finish(self, context: bpy.types.Context, events: list[JobEvent]) -> str:
        final = next((e for e in reversed(events) if e.kind != "progress"), None)
        if final is None or final.kind == "error":
            self.reports.append(("ERROR", final.payload if final else "The material maps ended without a result"))
            return "CANCELLED"
        if final.kind == "cancelled":
            self.reports.append(("WARNING", "Material maps cancelled: nothing was changed"))
            return "CANCELLED"
        source = bpy.data.images.get(self.plan.source_name)
        if source is None:
            self.reports.append(("ERROR", f"'{self.plan.source_name}' was removed meanwhile: no maps were written"))
            return "CANCELLED"
        changes = results.Changes()
        try:
            images, problems = write_maps(changes, source, final.payload, self.plan.source_recipe,
                                          self.plan.uv_map, self.plan.keep_history)
        except Exception as error:  # anything half-written is undone
            traceback.print_exc()
            changes.rollback()
            self.reports.append(("ERROR", f"Could not write the material maps: {error}"))
            return "CANCELLED"
        changes.commit()
        settle_names(images, source.name)
        self.reports += [("WARNING", problem) for problem in problems]
        self.reports.append(("INFO", "Material maps: " + ", ".join(image.name for image in images.values())))
        return "FINISHED"

    def release_arrays(self) -> None:
        self.plan.request = dataclasses.replace(self.plan.request, image=None)
        self.plan.surface = None


