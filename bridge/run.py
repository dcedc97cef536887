"""One generation from the operator's point of view: plan, run, drain, write.

The operator is a thin shell around this: with a UI it starts the job on a
worker thread and calls ``tick`` from a timer; headless it runs the job in
place and calls ``tick`` once. Both paths write the result through ``finish``.
"""

from __future__ import annotations

import importlib.util
import traceback
from dataclasses import dataclass, field

import bpy

from . import capture, preview, requests, results
from .job import GenerationJob, JobEvent, current_job, set_current_job


@dataclass
class Plan:
    """Everything checked and captured before the engine runs; nothing created yet."""

    request: object
    options: object
    target: str
    object_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prepare(context: bpy.types.Context) -> Plan:
    """Check the settings and targets, capture the img2img source. Raises ValueError with a clear message."""
    if current_job() is not None:
        raise ValueError("A generation is already running: wait for it or cancel it first")
    check_engine_packages()
    settings = context.scene.latent_textures
    request = requests.request_from_settings(settings)
    requests.validate_settings(request)
    plan = Plan(request, requests.options_from_preferences(context), settings.target)
    plan.object_names = target_objects(context, settings.target)
    if settings.mode == "IMG2IMG":
        try:
            request.init_image = _capture(context, settings, plan)
        except RuntimeError as error:
            raise ValueError(f"Could not capture the source image: {error}") from error
    request.validate()
    return plan


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
    return []


def _capture(context, settings, plan: Plan):
    width, height = settings.width, settings.height
    if settings.source == "IMAGE":
        return capture.capture_image(settings.source_image, width, height)
    if settings.source == "VIEWPORT":
        if not bpy.app.background and context.screen is not None:
            return capture.capture_viewport(context, width, height)
        plan.notes.append("No viewport in background mode: used a camera render as the source instead")
    return capture.capture_camera(context.scene, width, height)


class GenerationRun:
    """A started generation: its job, its reports, and what it wrote."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.job = GenerationJob(plan.options, plan.request)
        self.reports: list[tuple[str, str]] = [("INFO", note) for note in plan.notes]
        self.image: bpy.types.Image | None = None
        set_current_job(self.job)

    def start(self) -> None:
        """On a worker thread (UI)."""
        self.job.start()

    def run_here(self) -> None:
        """In the calling thread (background mode, scripts)."""
        self.job.run()

    def tick(self, context: bpy.types.Context) -> str | None:
        """Drain the worker's events on the main thread.

        Returns None while running, else the operator's outcome: "FINISHED" or "CANCELLED".
        """
        events = self.job.drain()
        latest = next((e for e in reversed(events) if e.kind == "progress"), None)
        if latest is not None and latest.payload.preview is not None and not bpy.app.background:
            preview.show(context, latest.payload.preview)
        if not self.job.finished:
            return None
        set_current_job(None)
        if not bpy.app.background:
            preview.remove(context)
        return self.finish(context, events)

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
        recipe = dict(result.recipe, target=self.plan.target)
        changes = results.Changes()
        try:
            image = results.create_result_image(changes, result.image, recipe)
            if self.plan.target == "MATERIAL":
                results.apply_to_material(changes, bpy.data.objects[self.plan.object_names[0]], image)
            elif self.plan.target == "PROJECT":
                objects = [bpy.data.objects[name] for name in self.plan.object_names]
                results.apply_projection(changes, context, objects, image,
                                         self.plan.request.width, self.plan.request.height)
            changes.set(settings, "result_image", image)
            changes.set(settings, "seed", result.seed)
        except Exception as error:  # anything half-written is undone; the console keeps the traceback
            traceback.print_exc()
            changes.rollback()
            self.reports.append(("ERROR", f"Could not write the result: {error}"))
            return "CANCELLED"
        self.image = image
        if not bpy.app.background:
            preview.show_result(context, image)
        self.reports.append(("INFO", f"Generated '{image.name}' (seed {result.seed})"))
        self.reports += [("INFO", note) for note in result.ignored]  # settings this model did not use
        return "FINISHED"

    def abandon(self) -> None:
        """Stop listening (e.g. the operator was torn down): cancel and forget the job."""
        self.job.cancel()
        set_current_job(None)
