"""``target = 'OBJECT'`` (Whole Object): several views of the selected objects, generated conditioned on
their geometry and baked into each mesh's own render UV map (issue 11).

Main thread (``capture``): the settings checked, and the scene's and meshes' triangles copied out of Blender
in one pass (``foreach_get``; a View Collection's cameras too). Nothing else: a 63k-triangle mesh's capture
would freeze the UI for seconds (issue 23). Worker (``ObjectJob.work``): numpy and the engine only — the views
placed, each view's depth and control image, every mesh's texels (``ObjectCapture.prepare``), the views'
control images tiled into grids (``geometry.grid.plan_grids``: each of Width x Height, at most four views to a
grid, sharing seed and prompt), one generation per grid, the grids cut back into views and baked
(``bridge.object_bake.bake_mesh``), each texture encoded as a PNG. Main thread again (``ObjectRun``): one
image per mesh packed from that PNG, wired into its material through a UV Map node naming its render UV map
(``results.add_image_to_base_color``, the same node reused on a re-run); the UV map itself is never written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import traceback
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..dependencies.model_scan import FAMILY_LABELS
from ..engine import EngineError, GenerationCancelled, GenerationResult
from ..engine.families import native_size, smallest_grid_cell
from ..engine.request import MIN_SIZE, ProgressEvent, ReferenceSpec
from ..engine.sync import scheduler_problem
from ..geometry import ViewCamera, grid, rasterize
from ..geometry.sequential import render_texture, repaint_mask
from . import object_color, object_maps, object_materials, results
from .geometry import SceneTriangles, scene_triangles
from .job import GenerationJob, JobEvent
from .object_bake import (BakedMesh, MeshSurfaces, MeshTexels, ViewPasses, bake_mesh, bake_views, camera_recipe,
                          check_control, collection_views, mesh_surfaces, passes_of, place_auto_views,
                          render_uv_layer)
from .object_sync import latent_views
from .pixels import encode_png
from .plan import Plan, Target, find_object
from .run import GenerationRun


@dataclass
class ObjectCapture:
    """Everything the worker needs, read before the engine runs (numpy only, nothing in bpy.data).

    ``prepare`` (worker) fills ``passes``, ``meshes`` and, for placed views, ``cameras`` and ``view_recipes``.
    """

    method: str
    size: tuple[int, int]  # Width x Height as set, the recipe's (GRID: each grid's; the views are its cells)
    view_width: int
    view_height: int
    view_count: int
    cameras: list[ViewCamera] | None  # a View Collection's; None: placed around the objects on the worker
    view_recipes: list[dict]
    scene: SceneTriangles | None  # every rendered triangle: what the views' depth sees
    surfaces: list[MeshSurfaces]  # per mesh, the triangles of each object using it
    object_positions: list[np.ndarray]  # world triangles of each selected object, in selection order
    texture_size: int
    keep_view_images: bool
    grids: grid.GridPlan | None = None  # GRID: which views each grid generation holds, and the cell size
    sync_fraction: float = 0.8  # SYNC: the share of the steps synchronised
    color_match: str = "NONE"  # GRID / SEQUENTIAL: later views matched to earlier ones (``object_color``)
    color_space: object = None  # ``geometry.color_match.PerceptualSpace``, read on the main thread
    color_regions: list = field(default_factory=list)  # GRID with color_match: each view's object pixels
    sync_attention: str = "NONE"  # SYNC: cross-view attention (``engine/sync_attention.py``)
    passes: list[ViewPasses] = field(default_factory=list)
    meshes: list[MeshTexels] = field(default_factory=list)
    # SYNC: each view's latent pixels -> the meshes' latent texels, and the bake of the views' latents into them
    latent_views: list = field(default_factory=list)
    latent_bake: object = None  # ``geometry.latent_sync.LatentBake``
    tangent_frames: dict = field(default_factory=dict)  # Material Maps' normal: ``object_maps.capture_frames``
    # SEQUENTIAL, View 1 as Reference: the later views' reference is view 1's result, at this (strength, model)
    first_view_reference: tuple[float, str] | None = None

    def prepare(self, request, cancel_event=None):
        """The views, their passes and every mesh's texels (worker, numpy only); returns ``request`` with its
        control image (the first grid generation's, or view 1's)."""
        if self.cameras is None:
            views = place_auto_views(self.object_positions, self.view_count, self.view_width, self.view_height)
            self.cameras = [view.camera() for view in views]
            self.view_recipes = [view.recipe() for view in views]
        self.object_positions = []
        self.passes = passes_of(self.cameras, self.scene, request.control)
        if self.method == "SYNC":
            self.latent_views, self.latent_bake = latent_views(self.passes, self.surfaces, self.scene,
                                                               self.texture_size)
        self.scene = None
        for surfaces in self.surfaces:
            if cancel_event is not None and cancel_event.is_set():
                raise GenerationCancelled("cancelled while reading the meshes")
            self.meshes.append(surfaces.texels(self.texture_size))
        if self.method == "GRID" and self.color_match != "NONE":
            self.color_regions = object_color.object_pixels(self.passes, self.surfaces)
        if self.method != "SEQUENTIAL":
            self.surfaces = []  # only SEQUENTIAL draws the texture so far into the next view
        if self.grids is not None:
            return grid_request(request, self.grids, self.passes, 0)
        if request.control == "NONE":
            return request
        return dataclasses.replace(request, control_image=self.passes[0].control_image)


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
    def recipe(self) -> dict:
        return self.generation.recipe

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
    grids = plan_grids(views, settings.width, settings.height)
    width, height = grids.size(0)
    counts = [len(group) for group in grids.groups]
    if len(counts) == 1:
        work = f"one {width}×{height} grid"
    elif len(set(counts)) == 1:
        work = f"{len(counts)} grids of {width}×{height}"
    else:
        work = f"{len(counts)} grids ({' + '.join(map(str, counts))} views)"
    return None, f"{views} views × {settings.steps} steps: {work}, cells {grids.cell[0]}×{grids.cell[1]}"


def plan_grids(views: int, width: int, height: int) -> grid.GridPlan:
    """The grid generations of ``views`` views at Width x Height (``geometry.grid.plan_grids``), none under the
    engine's smallest size."""
    return grid.plan_grids(views, width, height, smallest=MIN_SIZE)


def grid_warnings(settings, family: tuple[str, str] | None) -> list[str]:
    """What the panel warns of before a GRID run: cells smaller than the model's family draws (``family``:
    (name, prediction type), None where unknown: no such warning), and views that ignore the shape."""
    views = view_count(settings)
    if settings.object_method != "GRID" or views == 0:
        return []
    warnings = []
    cell = plan_grids(views, settings.width, settings.height).cell
    if family is not None:
        smallest = smallest_grid_cell(*family)
        if min(cell) < smallest:
            label = FAMILY_LABELS.get(family[0], family[0]) + (" v-prediction" if family[1] == "v_prediction" else "")
            size = native_size(*family)
            warnings.append(f"Cells of {cell[0]}×{cell[1]} are too small for {label} (it draws from {smallest} px): "
                            f"set Size X/Y to {size}×{size} (Use Recommended Settings)")
    if settings.control == "NONE":
        warnings.append("Grid with Control None: the views ignore the object's shape and will not meet at the seams: "
                        "set Control to Depth")
    return warnings


def target_objects(context: bpy.types.Context) -> list[str]:
    objects = [obj for obj in context.selected_objects if obj.type == "MESH"]
    if not objects:
        raise ValueError("Target is Whole Object but no mesh object is selected: select the objects to texture")
    for obj in objects:
        render_uv_layer(obj)  # names the first mesh without a UV map
    return [obj.name for obj in objects]


def capture(context: bpy.types.Context, settings, plan: Plan, objects: list[bpy.types.Object]) -> None:
    """Views, view passes and texels of the plan's objects; the request becomes the first grid generation (or
    view 1).

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
    check_control(request.control)
    grids = None
    if settings.object_method == "GRID":  # every view is a cell of a grid of Width x Height
        grids = plan_grids(max(view_count(settings), 1), width, height)  # no camera: refused below, by name
        width, height = grids.cell
    cameras, view_recipes = None, []
    if settings.view_collection is not None:
        cameras_objects = sorted((obj for obj in settings.view_collection.all_objects if obj.type == "CAMERA"),
                                 key=lambda obj: obj.name)
        cameras = collection_views(scene, settings.view_collection, depsgraph, width, height)
        view_recipes = [camera_recipe(camera, width, height) for camera in cameras_objects]
    count = len(cameras) if cameras is not None else settings.object_views
    # the control images are made on the worker: validated here with a blank one of their size
    if grids is not None:
        grid_width, grid_height = grids.size(0)
        first = dataclasses.replace(request, width=grid_width, height=grid_height)
        if request.control != "NONE":
            first.control_image = np.zeros((grid_height, grid_width, 3), dtype=np.float32)
        try:
            first.validate()
        except ValueError as error:
            raise ValueError(f"{count} views make grids of {grid_width}x{grid_height}, which cannot be "
                             f"generated ({error}): use a smaller Width/Height") from error
    else:  # SEQUENTIAL: view 1 as asked, the later views inpaint (``ObjectJob.sequential``); SYNC: every view
        if settings.object_method == "SYNC":  # in one batch, the request carrying view 1's control image
            problem = scheduler_problem(request.scheduler)
            if problem:
                raise ValueError(problem)
        blank = np.zeros((height, width, 3), dtype=np.float32) if request.control != "NONE" else None
        first = dataclasses.replace(request, control_image=blank)
        first.validate()
    surfaces = mesh_surfaces(objects, depsgraph)
    by_name = {name: triangles[1] for mesh in surfaces for name, triangles in zip(mesh.object_names, mesh.triangles)}
    positions = [by_name[obj.name] for obj in objects]
    if cameras is None and not sum(len(p) for p in positions):
        raise ValueError("The selected objects have no surface to place views around")
    plan.request = first
    plan.target_capture = ObjectCapture(settings.object_method, (request.width, request.height), width, height,
                                        count, cameras, view_recipes,
                                        scene_triangles(depsgraph), surfaces, positions, settings.texture_size,
                                        settings.keep_view_images, grids, settings.sync_fraction,
                                        color_match=object_color.color_match_of(settings),
                                        sync_attention=settings.sync_attention)
    if plan.target_capture.color_match != "NONE":
        plan.target_capture.color_space = object_color.perceptual_space()
    if plan.material_maps is not None and "NORMAL" in plan.material_maps.maps:
        plan.target_capture.tangent_frames = object_maps.capture_frames(surfaces, depsgraph)
    if plan.reference is not None and plan.reference.recipe.get("first_view"):
        plan.target_capture.first_view_reference = (settings.reference_strength, plan.reference.recipe["model"])


def grid_request(request, grids: grid.GridPlan, passes: list[ViewPasses], group: int):
    """The request of grid generation ``group``: its size, and its views' control images tiled."""
    width, height = grids.size(group)
    tiled = dataclasses.replace(request, width=width, height=height)
    if request.control != "NONE":
        tiled.control_image = grid.tile([passes[index].control_image for index in grids.groups[group]],
                                        layout=grids.shape(group))
    return tiled


class ObjectJob(GenerationJob):
    """The grid generations (or the views one by one), then the bake (numpy) of every mesh; no bpy."""

    def __init__(self, plan: Plan, previews: bool = True) -> None:
        super().__init__(plan.options, plan.request, previews=previews, maps=plan.material_maps)
        self.capture: ObjectCapture | None = plan.target_capture
        grids = self.capture.grids if self.capture is not None else None
        self.part_label = "Grid" if grids is not None and len(grids.groups) > 1 else "View"
        if self.capture is not None and self.capture.method == "SYNC":  # every view in each step, in groups
            self.part_label, self.part_after_step = "View group", True

    def work(self, engine) -> ObjectResult:
        captured = self.capture
        self.events.put(JobEvent("progress", ProgressEvent(0, 1, stage="GEOMETRY")))  # as BAKE: for the UI only
        try:
            self.request = captured.prepare(self.request, self.cancel_event)
        except ValueError as error:  # a mesh Whole Object cannot bake (UVs over UDIM tiles): before generating
            raise EngineError(str(error)) from error
        if captured.method == "SEQUENTIAL":
            generation, views = self.sequential(engine, captured)
        elif captured.method == "SYNC":
            controls = [view.control_image for view in captured.passes] if self.request.control != "NONE" else None
            generation, images = engine.generate_sync(
                self.request, captured.latent_views, fraction=captured.sync_fraction, control_images=controls,
                bake=captured.latent_bake, attention=captured.sync_attention, on_progress=self._on_progress,
                cancel_event=self.cancel_event, previews=self.previews)
            views = list(images)
        else:
            generation, views = self.grids(engine, captured)
        baked = self.bake(captured, views, report=True)
        if self.maps is not None:  # each view's maps, baked like the colour
            self.maps_result, self.maps_failure = object_maps.bake_maps(engine, self, captured, views,
                                                                        captured.tangent_frames)
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
            done = bake_mesh(mesh, bake, allow_unseen=not report)
            if report:  # the final texture: encoded here, so the main thread only packs the bytes
                done.png = encode_png(done.texture)
            baked.append(done)
        return baked

    def generate_part(self, engine, request, part: int, parts: int) -> GenerationResult:
        """One generation of the run, its progress events marked as part ``part`` of ``parts`` (0/0: the only one);
        a cancel since the last one stops here."""
        if self.cancel_event.is_set():
            raise GenerationCancelled("cancelled between generations")

        def on_progress(event):
            self._on_progress(dataclasses.replace(event, part=part, parts=parts))

        return engine.generate(request, on_progress=on_progress, cancel_event=self.cancel_event,
                               previews=self.previews)

    def grids(self, engine, captured: ObjectCapture) -> tuple[GenerationResult, list[np.ndarray]]:
        """Each grid generation in turn, with the first one's seed and the same prompt; the grids cut back into
        the views, in view order."""
        grids = captured.grids
        views: list[np.ndarray | None] = [None] * len(captured.passes)
        first = None
        for group, indices in enumerate(grids.groups):
            request = self.request
            if group:
                request = dataclasses.replace(grid_request(request, grids, captured.passes, group), seed=first.seed)
            several = len(grids.groups) > 1  # one grid: plain steps, as any single generation
            result = self.generate_part(engine, request, group + 1 if several else 0, len(grids.groups) * several)
            first = first or result
            for index, view in zip(indices, grid.untile(result.image[..., :3], len(indices), grids.shape(group))):
                views[index] = view
        if captured.color_match != "NONE":
            views = object_color.grid_views(captured.color_match, captured.color_space, captured.meshes,
                                            captured.passes, views, captured.color_regions)
        return first, views

    def sequential(self, engine, captured: ObjectCapture) -> tuple[GenerationResult, list[np.ndarray]]:
        """View 1 generated; every later view inpaints what the views before it did not see well (feathered
        ``repaint_mask``) over the texture baked so far drawn into it (``render_texture``)."""
        count = len(captured.passes)
        views: list[np.ndarray] = []
        first = None
        for index, passes in enumerate(captured.passes):
            request = self.request
            if index and captured.first_view_reference is not None:
                request = dataclasses.replace(request, reference=first_view_reference(first, captured))
            if index:
                so_far = self.bake(captured, views)
                image, mask = _render_so_far(captured, so_far, passes)
                if not mask.any():  # every surface this view sees is already seen as well elsewhere
                    views.append(image)
                    continue
                request = dataclasses.replace(request, mode="INPAINT", init_image=image, mask_image=mask,
                                              strength=1.0, control_image=passes.control_image,
                                              seed=view_seed(first.seed, index))
            result = self.generate_part(engine, request, index + 1, count)
            if first is not None and "reference" in result.recipe:  # the adapter the later views used
                first.recipe.setdefault("reference", result.recipe["reference"])
            first = first or result
            view = result.image[..., :3]
            if index and captured.color_match != "NONE":  # matched to the bake so far where it repainted
                view = object_color.sequential_view(captured.color_match, captured.color_space, captured.meshes,
                                                    so_far, passes, view, mask)
            views.append(view)
        return first, views


def first_view_reference(first: GenerationResult, captured: ObjectCapture) -> ReferenceSpec:
    """View 1's result as the reference of a later SEQUENTIAL view (View 1 as Reference)."""
    strength, model = captured.first_view_reference
    image = np.ascontiguousarray(np.clip(first.image[..., :3], 0.0, 1.0), dtype=np.float32)
    return ReferenceSpec(image=image, strength=strength, model=model)


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
        for uv, positions, normals in surfaces.triangles:
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
        recipe = dict(result.generation.recipe, target="OBJECT", width=captured.size[0],
                      height=captured.size[1], object_method=captured.method,
                      object_views=len(captured.passes), texture_size=captured.texture_size,
                      views=captured.view_recipes, color_match=captured.color_match)
        if captured.grids is not None:
            recipe["grid"] = captured.grids.recipe()
        base = results.image_name(recipe.get("prompt", ""), result.seed)
        self.textures = []
        for baked in result.baked:
            name = base if len(result.baked) == 1 else f"{base} {baked.mesh_name}"
            image = results.create_result_image(changes, baked.texture,
                                                dict(recipe, mesh=baked.mesh_name, uv_map=baked.uv_name), name=name,
                                                png=baked.png)
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
        """Each mesh's texture on every material its objects' faces use, through a UV Map node naming its render
        UV map (``object_materials``); on an error nothing is changed."""
        plan = self.plan
        objects = {name: find_object(name, identity) for name, identity in zip(plan.object_names, plan.object_ids)}
        changes = results.Changes()
        try:
            problems = object_materials.wire_textures(changes, self.textures, objects, plan.keep_history)
        except Exception as error:  # the targets are left as they were; the images stay
            traceback.print_exc()
            changes.rollback()
            return [f"it could not be put on the objects ({type(error).__name__}: {error})"]
        changes.commit()
        return problems

    def write_material_maps(self, context: bpy.types.Context, image: bpy.types.Image) -> list[tuple[str, str]]:
        if self.job.maps_result is None:
            return super().write_material_maps(context, image)
        return object_maps.write_maps(context, self.textures, self.job.maps_result, self.plan.keep_history)

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
