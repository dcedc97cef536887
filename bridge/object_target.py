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
import hashlib
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..engine import GenerationCancelled, GenerationResult
from ..engine.request import ProgressEvent
from ..geometry import grid, rasterize
from ..geometry.sequential import render_texture, repaint_mask
from . import results
from .job import GenerationJob, JobEvent
from .object_bake import (BakedMesh, MeshTexels, ViewPasses, auto_views, bake_mesh, bake_views, camera_recipe,
                          collection_views, mesh_texels, object_triangles, render_uv_layer, view_passes)
from .object_sync import latent_views, scheduler_problem
from .plan import Plan, Target, find_object
from .run import GenerationRun


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
    # SEQUENTIAL: per mesh (as ``meshes``), per object using it: (uv, positions, normals) of its triangles
    surfaces: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=list)
    # SYNC: each view's latent pixels -> the meshes' latent texels (``object_sync.latent_views``)
    latent_views: list = field(default_factory=list)
    latent_bake: object = None  # SYNC: ``geometry.latent_sync.LatentBake``
    sync_fraction: float = 0.8


@dataclass
class ObjectResult:
    """What the worker hands back: the generation, each view's image (h, w, 3) and the baked meshes."""

    generation: GenerationResult
    views: list[np.ndarray]
    baked: list[BakedMesh]

    @property
    def seed(self) -> int:
        return self.generation.seed

    @property
    def ignored(self) -> list[str]:
        return self.generation.ignored


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
    if settings.mode != "TXT2IMG":
        return "Whole Object needs Mode Text to Image", ""
    if settings.object_method == "SYNC":
        problem = scheduler_problem(settings.scheduler)
        return problem, "" if problem else (f"{views} views × {settings.steps} steps: {views} views of "
                                            f"{settings.width}×{settings.height} denoised together")
    if settings.object_method == "SEQUENTIAL":
        return None, f"{views} views × {settings.steps} steps: {views} generations of {settings.width}×{settings.height}"
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


def capture(context: bpy.types.Context, settings, plan: Plan, objects: list[bpy.types.Object]) -> None:
    """Views, view passes and texels of the plan's objects; the request becomes the grid's generation.

    Raises ValueError with the fix for every setting Whole Object cannot use; creates nothing.
    """
    request = plan.request
    if request.mode != "TXT2IMG":
        raise ValueError("Whole Object generates its views from the prompt and the geometry: set Mode to "
                         "Text to Image")
    if plan.upscale is not None:
        raise ValueError("Upscale After Generate does not apply to Whole Object (the views are baked into a "
                         "texture of Texture Size): turn it off")
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
    passes = view_passes(cameras, depsgraph, request.control)
    if settings.object_method == "GRID":
        rows, columns = grid.grid_shape(len(cameras))
        first = dataclasses.replace(request, width=columns * width, height=rows * height)
        if request.control != "NONE":
            first.control_image = grid.tile([view.control_image for view in passes])
        try:
            first.validate()
        except ValueError as error:
            raise ValueError(f"{len(cameras)} views of {width}x{height} make a {columns * width}x{rows * height} "
                             f"grid, too large to generate ({error}): use fewer views or a smaller Width/Height",
                             ) from error
    elif settings.object_method == "SYNC":  # every view in one batch; the request carries view 1's control
        problem = scheduler_problem(request.scheduler)
        if problem:
            raise ValueError(problem)
        first = dataclasses.replace(request, control_image=passes[0].control_image)
        first.validate()
    else:  # SEQUENTIAL: view 1 as asked; the later views inpaint (``ObjectJob.sequential``)
        first = dataclasses.replace(request, control_image=passes[0].control_image)
        first.validate()
    meshes = mesh_texels(objects, depsgraph, settings.texture_size)
    surfaces = []
    if settings.object_method == "SEQUENTIAL":
        surfaces = [[object_triangles(bpy.data.objects[name], depsgraph, mesh.uv_name) for name in mesh.object_names]
                    for mesh in meshes]
    latent, bake = latent_views(passes, meshes, depsgraph, settings.texture_size) if settings.object_method == "SYNC" \
        else ([], None)
    plan.request = first
    plan.target_capture = ObjectCapture(settings.object_method, width, height, passes, view_recipes, meshes,
                                        settings.texture_size, settings.keep_view_images, surfaces, latent, bake,
                                        settings.sync_fraction)


class ObjectJob(GenerationJob):
    """One grid generation of every view, then the bake (numpy) of every mesh; no bpy."""

    def __init__(self, plan: Plan, previews: bool = True) -> None:
        super().__init__(plan.options, plan.request, previews=previews)
        self.capture: ObjectCapture | None = plan.target_capture
        self.part_label = "View"

    def work(self, engine) -> ObjectResult:
        captured = self.capture
        if captured.method == "SEQUENTIAL":
            generation, views = self.sequential(engine, captured)
        elif captured.method == "SYNC":
            controls = [view.control_image for view in captured.passes] if self.request.control != "NONE" else None
            generation, images = engine.generate_sync(
                self.request, captured.latent_views, fraction=captured.sync_fraction, control_images=controls,
                bake=captured.latent_bake, on_progress=self._on_progress, cancel_event=self.cancel_event,
                previews=self.previews)
            views = list(images)
        else:
            generation = engine.generate(self.request, on_progress=self._on_progress,
                                         cancel_event=self.cancel_event, previews=self.previews)
            views = grid.untile(generation.image[..., :3], len(captured.passes))
        baked = self.bake(captured, views, report=True)
        self.capture = None
        return ObjectResult(generation, views, baked)

    def bake(self, captured: ObjectCapture, views: list[np.ndarray], report: bool = False) -> list[BakedMesh]:
        """Every mesh baked from the first ``len(views)`` views; ``report``: the final bake (progress shown,
        a mesh no view saw is an error), else a bake so far."""
        bake = bake_views(captured.passes[:len(views)], views)
        baked = []
        for index, mesh in enumerate(captured.meshes):
            if self.cancel_event.is_set():
                raise GenerationCancelled("cancelled while baking")
            if report:  # straight onto the queue: the command line's step listeners only know DENOISE, DOWNLOAD
                self.events.put(JobEvent("progress", ProgressEvent(index, len(captured.meshes), stage="BAKE")))
            baked.append(bake_mesh(mesh, bake, allow_unseen=not report))
        return baked

    def sequential(self, engine, captured: ObjectCapture) -> tuple[GenerationResult, list[np.ndarray]]:
        """View 1 generated; every later view inpaints what the views before it did not see well (feathered
        ``repaint_mask``) over the texture baked so far drawn into it (``render_texture``)."""
        count = len(captured.passes)
        views: list[np.ndarray] = []
        first = None
        for index, passes in enumerate(captured.passes):
            if self.cancel_event.is_set():
                raise GenerationCancelled("cancelled between views")
            request = self.request
            if index:
                so_far = self.bake(captured, views)
                image, mask = _render_so_far(captured, so_far, passes)
                if not mask.any():  # every surface this view sees is already seen as well elsewhere
                    views.append(image)
                    continue
                request = dataclasses.replace(request, mode="INPAINT", init_image=image, mask_image=mask,
                                              strength=1.0, control_image=passes.control_image,
                                              seed=view_seed(first.seed, index))

            def on_progress(event, part=index + 1):
                self._on_progress(dataclasses.replace(event, part=part, parts=count))

            result = engine.generate(request, on_progress=on_progress, cancel_event=self.cancel_event,
                                     previews=self.previews)
            first = first or result
            views.append(result.image[..., :3])
        return first, views


def view_seed(seed: int, index: int) -> int:
    """The seed of view ``index`` (0-based) of a SEQUENTIAL run: view 1 uses the run's seed, later ones derive
    from it, so the recipe's seed reproduces the whole texture."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"latent_textures.object:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _render_so_far(captured: ObjectCapture, baked: list[BakedMesh],
                   passes: ViewPasses) -> tuple[np.ndarray, np.ndarray]:
    """((h, w, 3) the textures baked so far seen from this view, (h, w) where it should repaint)."""
    camera = passes.camera
    image = np.zeros((camera.height, camera.width, 3), dtype=np.float32)
    mask = np.zeros((camera.height, camera.width), dtype=np.float32)
    by_mesh = {mesh.mesh_name: mesh for mesh in baked}
    size = captured.texture_size
    for mesh, surfaces in zip(captured.meshes, captured.surfaces):
        done = by_mesh[mesh.mesh_name]
        best = np.zeros(size * size, dtype=np.float32)
        best[mesh.texels[0].index] = done.gathered.best_cosine
        best = best.reshape(size, size)
        for uv, positions, normals in surfaces:
            hits = rasterize(camera, positions)
            drawn, covered = render_texture(hits, uv, done.texture[..., :3], passes.depth)
            image[covered] = drawn[covered]
            mask = np.maximum(mask, repaint_mask(camera, hits, uv, normals, best, passes.depth))
    return image, mask


class ObjectRun(GenerationRun):
    """A started Whole Object generation: its own job and its own writing (one texture per mesh)."""

    def make_job(self, plan: Plan) -> GenerationJob:
        return ObjectJob(plan, previews=not bpy.app.background)

    def create_image(self, changes: results.Changes, result: ObjectResult) -> bpy.types.Image:
        """One packed texture per mesh (the first is the run's result), and the kept view images."""
        captured = self.plan.target_capture
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
        self.plan.target_capture = None
        self.textures = []


def _keep(changes: results.Changes, name: str, array: np.ndarray) -> bpy.types.Image:
    """A packed image that nothing uses but that is kept on save (a fake user)."""
    image = changes.new_image(name, array)
    image.pack()
    image.use_fake_user = True
    return image


TARGET = Target(objects=target_objects, capture=capture, start=ObjectRun,
                # the views are one grid image: its filmstrip/attention would not be the texture's
                no_insight="Filmstrip and attention maps are not recorded for Whole Object (yet)")
