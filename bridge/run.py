"""One generation from the operator's point of view: plan, run, drain, write.

The operator is a thin shell around this: with a UI it starts the job on a
worker thread and calls ``tick`` from a timer; headless it runs the job in
place and calls ``tick`` once. Both paths write the result through ``finish``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import traceback
from dataclasses import dataclass, field
from typing import Callable

import bpy
import numpy as np

from ..preferences import get_preferences
from . import capture, geometry, insight, masks, preview, projection, requests, results
from .job import GenerationJob, JobEvent, current_job, set_current_job


@dataclass
class ProjectionCapture:
    """The camera projection as it was at the start: what the artist moves or deletes meanwhile does not matter."""

    view: np.ndarray
    projection: np.ndarray
    uv_name: str
    uvs: dict[int, np.ndarray] = field(default_factory=dict)  # object identity -> per-loop UVs


@dataclass
class Plan:
    """Everything checked and captured before the engine runs; nothing created yet."""

    request: object
    options: object
    target: str
    object_names: list[str] = field(default_factory=list)
    object_ids: list[int] = field(default_factory=list)  # the same objects, found again after a rename
    notes: list[str] = field(default_factory=list)
    keep_history: bool = False
    projection: ProjectionCapture | None = None
    upscale: object = None  # Upscale After Generate: an UpscaleRequest without its image yet
    mask_name: str | None = None  # INPAINT: the mask Image used (None: the source's alpha)
    recorder: object = None  # engine.insight.InsightRecorder when the filmstrip / attention maps are asked for
    preview_decoder: str = "LINEAR"  # the preference "Live Preview"
    object_capture: object = None  # Whole Object: bridge.object_target.ObjectCapture


def prepare(context: bpy.types.Context, *, place_result: bool = True) -> Plan:
    """Check the settings and targets, capture the img2img source. Raises ValueError with a clear message.

    ``place_result=False``: the result only becomes an image (comparison grids): no target is checked.
    """
    check_no_job_running()
    check_engine_packages()
    settings = context.scene.latent_textures
    request = requests.request_from_settings(settings)
    requests.validate_settings(request)
    plan = Plan(request, requests.options_from_preferences(context), settings.target)
    plan.recorder = insight.recorder_from_settings(settings) if place_result else None
    if plan.recorder is not None and settings.target == "OBJECT":
        plan.recorder = None  # the views are one grid image: its filmstrip/attention would not be the texture's
        plan.notes.append("Filmstrip and attention maps are not recorded for Whole Object (yet)")
    plan.preview_decoder = getattr(get_preferences(context), "preview_decoder", "LINEAR")
    plan.keep_history = settings.keep_history
    plan.upscale = requests.upscale_after_generate(settings, request) if place_result else None
    if place_result:
        plan.object_names = target_objects(context, settings.target)
    objects = [bpy.data.objects[name] for name in plan.object_names]
    plan.object_ids = [object_identity(obj) for obj in objects]
    if settings.target == "OBJECT":  # its own views: no scene camera, no source image
        from . import object_target

        plan.object_capture = object_target.capture(context, settings, plan)
        return plan
    if settings.control != "NONE" and context.scene.camera is None:
        raise ValueError(f"Control {settings.control.title()} sees the scene through its camera, but the scene "
                         "has no camera: add one (or set Control to None)")
    if settings.mode == "INPAINT":
        # The mask first: a bad mask is refused before a render is spent on the source.
        request.mask_image = _mask(settings, plan)
        requests.validate_settings(request)
    if place_result and settings.target == "PROJECT":
        if settings.mode in ("IMG2IMG", "INPAINT") and settings.source == "VIEWPORT" and will_capture_viewport(context):
            problem = capture.viewport_projection_problem(capture.viewport_area(context), context.scene)
            if problem:
                raise ValueError(problem)
        plan.projection = capture_projection(context, objects, request.width, request.height, plan.keep_history)
    if settings.mode in ("IMG2IMG", "INPAINT"):
        try:
            request.init_image = _capture(context, settings, plan)
        except RuntimeError as error:
            raise ValueError(f"Could not capture the source image: {error}") from error
    if settings.control != "NONE":
        request.control_image = geometry.control_image(
            context.scene, context.evaluated_depsgraph_get(), settings.control, request.width, request.height)
    request.validate()
    return plan


def _mask(settings, plan: Plan):
    if settings.mask_image is not None:
        plan.mask_name = settings.mask_image.name
        return masks.mask_from_image(settings.mask_image, settings.width, settings.height)
    if settings.source != "IMAGE":
        raise ValueError("Inpaint without a Mask image repaints where the source image is transparent, which needs "
                         "Source: Image; pick a Mask image (white = repaint) for a camera or viewport source")
    return masks.mask_from_alpha(settings.source_image, settings.width, settings.height)


def check_no_job_running() -> None:
    if current_job() is not None:
        raise ValueError("A generation is already running: wait for it or cancel it first")


def check_engine_packages() -> None:
    """Fail with the fix, not a ModuleNotFoundError, when the engine's packages are not installed.

    This is also the one place the installed packages join ``sys.path``: on the
    main thread, right before the worker first imports the engine.
    """
    from ..dependencies.blender import activate_engine_packages
    from ..dependencies.requirements import STATUS_PACKAGES

    activate_engine_packages()
    missing = [name for name in STATUS_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"The engine's packages are not installed ({', '.join(missing)} missing): open Preferences > "
            "Add-ons > Latent Textures and click Install Dependencies"
        )


def target_objects(context: bpy.types.Context, target: str) -> list[str]:
    if target == "MATERIAL":
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            raise ValueError("Target is Material but the active object is not a mesh: select a mesh object")
        return [obj.name]
    if target == "PROJECT":
        if context.scene.camera is None:
            raise ValueError("Target is Project from Camera but the scene has no camera: add one")
        objects = [o for o in context.selected_objects if o.type == "MESH"]
        if not objects:
            raise ValueError("Target is Project from Camera but no mesh object is selected")
        return [o.name for o in objects]
    if target == "OBJECT":
        from . import object_target

        return object_target.target_objects(context)
    return []


def object_identity(obj: bpy.types.Object) -> int:
    """Stays with the object through renames; never reused within a session (``session_uid``, Blender 4.2+)."""
    return obj.session_uid


def find_object(name: str, identity: int) -> bpy.types.Object | None:
    """The object captured as ``name`` at the start, under whatever name it has now; None if it was deleted."""
    obj = bpy.data.objects.get(name)
    if obj is not None and object_identity(obj) == identity:
        return obj
    return next((o for o in bpy.data.objects if object_identity(o) == identity), None)


def capture_projection(context: bpy.types.Context, objects: list[bpy.types.Object], width: int, height: int,
                       keep_history: bool) -> ProjectionCapture:
    """The scene camera's matrices at this frame and every object's projected UVs, before the engine runs."""
    scene = context.scene
    depsgraph = context.evaluated_depsgraph_get()
    camera = geometry.view_camera(scene, scene.camera, width, height, depsgraph)
    uv_name = projection.projection_uv_name([obj.data for obj in objects], keep_history)
    for obj in objects:
        if obj.data.uv_layers.get(uv_name) is None and len(obj.data.uv_layers) >= projection.MAX_UV_MAPS:
            raise ValueError(
                f"'{obj.name}' already has {projection.MAX_UV_MAPS} UV maps (Blender's limit) and the projection "
                f"needs a new one ('{uv_name}'): delete a UV map (Object Data > UV Maps) or turn off Keep History"
            )
    captured = ProjectionCapture(np.linalg.inv(camera.world_matrix), camera.projection, uv_name)
    for obj in objects:
        captured.uvs[object_identity(obj)] = camera.uv(projection.loop_world_positions(obj, depsgraph))
    return captured


def will_capture_viewport(context: bpy.types.Context) -> bool:
    """Source Viewport renders the viewport only with a UI; headless it is a camera render."""
    return not bpy.app.background and capture.viewport_area(context) is not None


def _capture(context, settings, plan: Plan):
    width, height = settings.width, settings.height
    if settings.source == "IMAGE":
        return capture.capture_image(settings.source_image, width, height)
    if settings.source == "VIEWPORT":
        if will_capture_viewport(context):
            return capture.capture_viewport(context, width, height)
        plan.notes.append("No viewport in background mode: used a camera render as the source instead")
    return capture.capture_camera(context.scene, width, height, settings.capture_quality)


class GenerationRun:
    """A started generation: its job, its reports, and what it wrote."""

    def __init__(self, plan: Plan, job: GenerationJob | None = None) -> None:
        self.plan = plan
        if job is None:
            job = self.make_job(plan)
        self.job = job
        self.job.preview_decoder = getattr(plan, "preview_decoder", "LINEAR")
        self.reports: list[tuple[str, str]] = [("INFO", note) for note in plan.notes]
        self.image: bpy.types.Image | None = None
        self.insight_images: list[bpy.types.Image] = []
        # Set by the modal operator: removes its timer and status text (also when the add-on is disabled).
        self.on_end: Callable[[], None] | None = None
        self.ended = False
        set_current_job(self.job)
        _live_runs.append(self)

    def make_job(self, plan: Plan) -> GenerationJob:
        return GenerationJob(plan.options, plan.request, getattr(plan, "recorder", None),
                             previews=not bpy.app.background, upscale=getattr(plan, "upscale", None))

    def start(self) -> None:
        """On a worker thread (UI)."""
        self.job.start()

    def run_here(self) -> None:
        """In the calling thread (background mode, scripts)."""
        self.job.run()

    def tick(self, context: bpy.types.Context) -> str | None:
        """Drain the worker's events on the main thread.

        Returns None while running, else the operator's outcome: "FINISHED" or "CANCELLED".
        Never raises: anything unexpected ends the run (worker cancelled, ERROR report).
        """
        try:
            return self._tick(context)
        except Exception as error:  # the traceback for the console, one line for the artist
            traceback.print_exc()
            self.abandon()
            self.reports.append(("ERROR", f"The generation stopped on an internal error "
                                          f"({type(error).__name__}: {error}); see the system console"))
            return "CANCELLED"

    def _tick(self, context: bpy.types.Context) -> str | None:
        events = self.job.drain()
        latest = next((e for e in reversed(events) if e.kind == "progress"), None)
        if latest is not None and latest.payload.preview is not None and not bpy.app.background:
            preview.show(context, latest.payload.preview)
        if not self.job.finished:
            return None
        set_current_job(None)
        try:
            if not bpy.app.background:
                preview.remove(context)
            return self.finish(context, events)
        finally:
            self._end()

    def finish(self, context: bpy.types.Context, events: list[JobEvent]) -> str:
        final = next((e for e in reversed(events) if e.kind != "progress"), None)
        if final is None or final.kind == "error":
            self.reports.append(("ERROR", final.payload if final else "The generation ended without a result"))
            return "CANCELLED"
        if final.kind == "cancelled":
            self.reports.append(("WARNING", "Generation cancelled: nothing was changed"))
            return "CANCELLED"
        result = final.payload
        settings = context.scene.latent_textures
        changes = results.Changes()
        try:
            image = self.create_image(changes, result)
            changes.set(settings, "result_image", image)
            changes.set(settings, "seed", result.seed)
            if self.plan.recorder is not None:
                recipe = dict(result.recipe, target=self.plan.target)
                self.insight_images = insight.write_recorded(changes, image, self.plan.recorder, recipe)
        except Exception as error:  # anything half-written is undone; the console keeps the traceback
            traceback.print_exc()
            changes.rollback()
            self.reports.append(("ERROR", f"Could not write the result: {error}"))
            return "CANCELLED"
        changes.commit()
        self.image = image
        # The image is in place: whatever happens to the targets, it is kept.
        for problem in self.write_targets(image):
            self.reports.append(("WARNING", f"'{image.name}' was generated and kept, but {problem}"))
        if not bpy.app.background:
            preview.show_result(context, image)
        self.reports.append(("INFO", f"Generated '{image.name}' (seed {result.seed})"))
        if self.insight_images:
            self.reports.append(("INFO", "Insight images: " + ", ".join(i.name for i in self.insight_images)))
        self.reports += [("INFO", note) for note in result.ignored]  # settings this model did not use
        return "FINISHED"

    def create_image(self, changes: results.Changes, result) -> bpy.types.Image:
        """The new packed image with its recipe, through ``changes``."""
        recipe = dict(result.recipe, target=self.plan.target)
        if self.plan.request.mode == "INPAINT":
            recipe["mask_image"] = self.plan.mask_name or ""
        image = results.create_result_image(changes, result.image, recipe)
        if self.plan.request.control != "NONE":
            results.keep_control_image(changes, image, self.plan.request.control_image)
        return image

    def write_targets(self, image: bpy.types.Image) -> list[str]:
        """Put ``image`` on the objects captured at the start; one line per object (or failure) not written."""
        plan = self.plan
        found = [(name, find_object(name, identity)) for name, identity in zip(plan.object_names, plan.object_ids)]
        problems = [f"'{name}' was deleted while generating: it did not get the texture"
                    for name, obj in found if obj is None]
        objects = [obj for _, obj in found if obj is not None]
        changes = results.Changes()
        try:
            if plan.target == "MATERIAL" and objects:
                results.apply_to_material(changes, objects[0], image, keep_history=plan.keep_history)
            elif plan.target == "PROJECT" and objects:
                captured = plan.projection
                pairs = [(obj, captured.uvs[object_identity(obj)]) for obj in objects]
                problems += results.apply_projection(changes, pairs, image, captured.uv_name, plan.keep_history)
        except Exception as error:  # the targets are left as they were; the image stays
            traceback.print_exc()
            changes.rollback()
            return [*problems, f"it could not be put on the target ({type(error).__name__}: {error})"]
        changes.commit()
        return problems

    def abandon(self) -> None:
        """Stop listening (e.g. the operator was torn down): cancel and forget the job."""
        self.job.cancel()
        if current_job() is self.job:
            set_current_job(None)
        self._end()

    def _end(self) -> None:
        """The run is over for the main thread: UI cleanup, and drop the large arrays.

        Blender keeps the last finished operators (and with them this run):
        they must not hold the source image, UVs or the result's pixels.
        """
        self.ended = True
        if self in _live_runs:
            _live_runs.remove(self)
        on_end, self.on_end = self.on_end, None
        self.release_arrays()
        if on_end is not None:
            on_end()

    def release_arrays(self) -> None:
        # A copy without the source image: a cancelled worker may still be reading the original.
        self.plan.request = dataclasses.replace(self.plan.request, init_image=None, control_image=None,
                                                mask_image=None)
        if self.plan.recorder is not None:
            self.plan.recorder.release()
        if self.plan.projection is not None:
            self.plan.projection.uvs.clear()


class UpscaleRun(GenerationRun):
    """A started upscale (``bridge/upscale.py``): the same job and ticks, its own result writing."""

    def create_image(self, changes: results.Changes, result) -> bpy.types.Image:
        from . import upscale

        return upscale.create_image(changes, self.plan, result)

    def write_targets(self, image: bpy.types.Image) -> list[str]:
        from . import upscale

        return upscale.replace_in_materials(self.plan, image)

    def release_arrays(self) -> None:
        self.plan.request = dataclasses.replace(self.plan.request, image=None)


_live_runs: list[GenerationRun] = []


def shutdown() -> None:
    """The add-on is being disabled: cancel the running generation and remove its timer and status text."""
    for run in list(_live_runs):
        run.abandon()
