"""``target = 'OBJECT'`` (Whole Object): several views of the selected objects, generated conditioned on
their geometry and baked into each mesh's own render UV map (issue 11).

Main thread (``capture``): the views (a View Collection's cameras or numpy cameras placed around the
objects: nothing is added to the scene), each view's depth and control image, every mesh's texels.
Worker (``ObjectJob.work``): numpy and the engine only — the views' control images tiled into one
grid (``geometry.grid``), one generation, the grid cut back into views and baked
(``bridge.object_bake.bake_mesh``). Main thread again (``ObjectRun``): one packed image per mesh,
wired into its material through a UV Map node naming its render UV map (``results.add_image_to_base_color``,
the same node reused on a re-run); the UV map itself is never written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import bpy
import numpy as np

from ..engine import GenerationCancelled, GenerationResult
from ..engine.request import ProgressEvent
from ..geometry import grid
from . import results
from .job import GenerationJob, JobEvent
from .object_bake import (BakedMesh, MeshTexels, ViewPasses, auto_views, bake_mesh, bake_views, camera_recipe,
                          collection_views, mesh_texels, render_uv_layer, view_passes)
from .run import GenerationRun, Plan, find_object


@dataclass
class ObjectCapture:
    """Everything the worker needs, captured before the engine runs (numpy only, nothing in bpy.data)."""

    method: str
    view_width: int
    view_height: int
    passes: list[ViewPasses]
    view_recipes: list[dict]
    meshes: list[MeshTexels]
    texture_size: int
    keep_view_images: bool


@dataclass
class ObjectResult:
    """What the worker hands back: the generation, each view's image (h, w, 3) and the baked meshes."""

    generation: GenerationResult
    views: list[np.ndarray]
    baked: list[BakedMesh]

    @property
    def seed(self) -> int:
        return self.generation.seed


def view_count(settings) -> int:
    """How many views the settings make: the View Collection's cameras, else Views."""
    if settings.view_collection is not None:
        return sum(1 for obj in settings.view_collection.all_objects if obj.type == "CAMERA")
    return settings.object_views


def work_estimate(settings) -> tuple[str | None, str]:
    """(what stops it, or None; the work it makes) for the panel, before clicking."""
    views = view_count(settings)
    if views == 0:
        return f"'{settings.view_collection.name}' holds no cameras", ""
    if settings.object_method != "GRID":
        return "Method Sequential is not available yet", ""
    if settings.mode != "TXT2IMG":
        return "Whole Object needs Mode Text to Image", ""
    rows, columns = grid.grid_shape(views)
    return None, (f"{views} views × {settings.steps} steps: one {columns * settings.width}×"
                  f"{rows * settings.height} image")


def target_objects(context: bpy.types.Context) -> list[str]:
    objects = [obj for obj in context.selected_objects if obj.type == "MESH"]
    if not objects:
        raise ValueError("Target is Whole Object but no mesh object is selected: select the objects to texture")
    for obj in objects:
        render_uv_layer(obj)  # names the first mesh without a UV map
    return [obj.name for obj in objects]


def capture(context: bpy.types.Context, settings, plan: Plan) -> ObjectCapture:
    """Views, view passes and texels of the plan's objects; the request becomes the grid's generation.

    Raises ValueError with the fix for every setting Whole Object cannot use; creates nothing.
    """
    request = plan.request
    if settings.object_method != "GRID":
        raise ValueError("Method Sequential is not available yet: use Method Grid")
    if request.mode != "TXT2IMG":
        raise ValueError("Whole Object generates its views from the prompt and the geometry: set Mode to "
                         "Text to Image")
    if plan.upscale is not None:
        raise ValueError("Upscale After Generate does not apply to Whole Object (the views are baked into a "
                         "texture of Texture Size): turn it off")
    objects = [bpy.data.objects[name] for name in plan.object_names]
    scene = context.scene
    depsgraph = context.evaluated_depsgraph_get()
    width, height = request.width, request.height
    if settings.view_collection is not None:
        cameras_objects = sorted((obj for obj in settings.view_collection.all_objects if obj.type == "CAMERA"),
                                 key=lambda obj: obj.name)
        cameras = collection_views(scene, settings.view_collection, depsgraph, width, height)
        view_recipes = [camera_recipe(camera, width, height) for camera in cameras_objects]
    else:
        views = auto_views(objects, depsgraph, settings.object_views, width, height)
        cameras = [view.camera() for view in views]
        view_recipes = [view.recipe() for view in views]
    rows, columns = grid.grid_shape(len(cameras))
    grid_request = dataclasses.replace(request, width=columns * width, height=rows * height)
    passes = view_passes(cameras, depsgraph, request.control)
    if request.control != "NONE":
        grid_request.control_image = grid.tile([view.control_image for view in passes])
    try:
        grid_request.validate()
    except ValueError as error:
        raise ValueError(f"{len(cameras)} views of {width}x{height} make a {columns * width}x{rows * height} "
                         f"grid, too large to generate ({error}): use fewer views or a smaller Width/Height") from error
    meshes = mesh_texels(objects, depsgraph, settings.texture_size)
    plan.request = grid_request
    return ObjectCapture(settings.object_method, width, height, passes, view_recipes, meshes,
                         settings.texture_size, settings.keep_view_images)


class ObjectJob(GenerationJob):
    """One grid generation of every view, then the bake (numpy) of every mesh; no bpy."""

    def __init__(self, plan: Plan, previews: bool = True) -> None:
        super().__init__(plan.options, plan.request, previews=previews)
        self.capture: ObjectCapture | None = plan.object_capture
        self.part_label = "View"

    def work(self, engine) -> ObjectResult:
        captured = self.capture
        generation = engine.generate(self.request, on_progress=self._on_progress, cancel_event=self.cancel_event,
                                     previews=self.previews)
        views = grid.untile(generation.image[..., :3], len(captured.passes))
        bake = bake_views(captured.passes, views)
        baked = []
        for index, mesh in enumerate(captured.meshes):
            if self.cancel_event.is_set():
                raise GenerationCancelled("cancelled while baking")
            # Straight onto the queue: the command line's step listeners only know DENOISE and DOWNLOAD.
            self.events.put(JobEvent("progress", ProgressEvent(index, len(captured.meshes), stage="BAKE")))
            baked.append(bake_mesh(mesh, bake))
        self.capture = None
        return ObjectResult(generation, views, baked)


class ObjectRun(GenerationRun):
    """A started Whole Object generation: its own job and its own writing (one texture per mesh)."""

    def make_job(self, plan: Plan) -> GenerationJob:
        return ObjectJob(plan, previews=not bpy.app.background)

    def create_image(self, changes: results.Changes, result: ObjectResult) -> bpy.types.Image:
        """One packed texture per mesh (the first is the run's result), and the kept view images."""
        captured = self.plan.object_capture
        recipe = dict(result.generation.recipe, target="OBJECT", width=captured.view_width,
                      height=captured.view_height, object_method=captured.method,
                      object_views=len(captured.passes), texture_size=captured.texture_size,
                      views=captured.view_recipes)
        base = results.image_name(recipe.get("prompt", ""), result.seed)
        self.textures = []
        for baked in result.baked:
            name = base if len(result.baked) == 1 else f"{base} {baked.mesh_name}"
            image = results.create_result_image(changes, baked.texture,
                                                dict(recipe, mesh=baked.mesh_name, uv_map=baked.uv_name), name=name)
            self.textures.append((image, baked))
            if baked.shared_texels:
                self.reports.append(("INFO", f"The UV map '{baked.uv_name}' of '{baked.mesh_name}' has overlapping "
                                             f"islands (e.g. mirrored halves): {baked.shared_texels} texels are shared "
                                             "by both sides and show the same colour"))
        first = self.textures[0][0]
        if captured.keep_view_images:
            for index, (view, passes, view_recipe) in enumerate(
                    zip(result.views, captured.passes, captured.view_recipes), start=1):
                kept = _keep(changes, f"{first.name} view {index}", view)
                kept[results.RECIPE_PROPERTY] = dict(recipe, views=[view_recipe], view_index=index)
                if passes.control_image is not None:
                    control = _keep(changes, f"{first.name} view {index} control", passes.control_image)
                    kept[results.RECIPE_PROPERTY]["control_image"] = control.name
        return first

    def write_targets(self, image: bpy.types.Image) -> list[str]:
        """Each mesh's texture on its objects' materials, through a UV Map node naming its render UV map."""
        plan = self.plan
        identities = dict(zip(plan.object_names, plan.object_ids))
        problems: list[str] = []
        changes = results.Changes()
        wired: dict[str, bpy.types.Image] = {}
        try:
            for texture, baked in self.textures:
                new_material: list[bpy.types.Material] = []

                def shared_new_material() -> bpy.types.Material:
                    if not new_material:
                        new_material.append(changes.new_material(results.MATERIAL_NAME))
                    return new_material[0]

                for name in baked.object_names:
                    obj = find_object(name, identities[name])
                    if obj is None:
                        problems.append(f"'{name}' was deleted while generating: it did not get the texture")
                        continue
                    material = results.target_material(changes, obj, shared_new_material)
                    if material.name in wired:
                        if wired[material.name] != texture:
                            problems.append(f"'{obj.name}' shares material '{material.name}' with an object of "
                                            f"another mesh: it shows '{wired[material.name].name}' (give it a "
                                            "material of its own)")
                        continue
                    results.add_image_to_base_color(changes, material, texture, uv_map=baked.uv_name,
                                                    keep_history=plan.keep_history)
                    wired[material.name] = texture
        except Exception as error:  # the targets are left as they were; the images stay
            changes.rollback()
            return [*problems, f"it could not be put on the objects ({type(error).__name__}: {error})"]
        changes.commit()
        return problems

    def release_arrays(self) -> None:
        super().release_arrays()
        self.plan.object_capture = None
        self.textures = []


def _keep(changes: results.Changes, name: str, array: np.ndarray) -> bpy.types.Image:
    """A packed image that nothing uses but that is kept on save (a fake user)."""
    image = changes.new_image(name, array)
    image.pack()
    image.use_fake_user = True
    return image
