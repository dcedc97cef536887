"""One started generation from the operator's point of view: run, drain, write.

The operator is a thin shell around this: with a UI it starts the job on a
worker thread and calls ``tick`` from a timer; headless it runs the job in
place and calls ``tick`` once. Both paths write the result through ``finish``.
Where the result goes is the target's: each target's run (``image_target``,
``material_target``, ``project_target``, ``object_target``, ``upscale``)
writes its image and its objects through ``create_image`` and ``write_targets``.
"""

from __future__ import annotations

import dataclasses
import traceback
from typing import Callable

import bpy

from . import insight, pbr_maps_writer, preview, reference, results
from .job import GenerationJob, JobEvent, current_job, set_current_job
from .plan import Plan, find_object


class GenerationRun:
    """A started generation: its job, its reports, and what it wrote."""

    writes_seed = True  # the seed used goes back to the panel (so turning Random Seed off reproduces it)

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
                             previews=not bpy.app.background, upscale=getattr(plan, "upscale", None),
                             maps=getattr(plan, "material_maps", None))

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
        # the newest preview (SYNC's view-group events carry none: the last step's stays shown)
        latest = next((e for e in reversed(events) if e.kind == "progress" and e.payload.preview is not None), None)
        if latest is not None and not bpy.app.background:
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
        reference.add_to_recipe(result.recipe, getattr(self.plan, "reference", None))
        settings = context.scene.latent_textures
        changes = results.Changes()
        try:
            image = self.create_image(changes, result)
            changes.set(settings, "result_image", image)
            if self.writes_seed:
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
        self.reports += self.write_material_maps(context, image)
        if self.job.upscale_failure is not None:
            self.reports.append(("WARNING", f"'{image.name}' was generated and kept, but Upscale After Generate "
                                            f"failed, so it is not upscaled: {self.job.upscale_failure}"))
        if self.insight_images:
            self.reports.append(("INFO", "Insight images: " + ", ".join(i.name for i in self.insight_images)))
        self.reports += [("INFO", note) for note in result.ignored]  # settings this model did not use
        return "FINISHED"

    def write_material_maps(self, context: bpy.types.Context, image: bpy.types.Image) -> list[tuple[str, str]]:
        """Material Maps: the maps made after the generation, beside ``image`` in its materials (a target with
        geometry overrides this); the reports."""
        if self.job.maps_failure is not None:
            return [("WARNING", f"'{image.name}' was generated and kept, but its material maps failed: "
                                f"{self.job.maps_failure}")]
        if self.job.maps_result is None:
            return []
        return pbr_maps_writer.write_after_generate(context, image, self.job.maps_result, self.plan.keep_history)

    def create_image(self, changes: results.Changes, result) -> bpy.types.Image:
        """The new packed image with its recipe, through ``changes``: the target's."""
        raise NotImplementedError

    def write_targets(self, image: bpy.types.Image) -> list[str]:
        """Put ``image`` on the objects captured at the start; one line per object (or failure) not written."""
        plan = self.plan
        found = [(name, find_object(name, identity)) for name, identity in zip(plan.object_names, plan.object_ids)]
        problems = [f"'{name}' was deleted while generating: it did not get the texture"
                    for name, obj in found if obj is None]
        objects = [obj for _, obj in found if obj is not None]
        changes = results.Changes()
        try:
            problems += self.write_objects(changes, objects, image)
        except Exception as error:  # the targets are left as they were; the image stays
            traceback.print_exc()
            changes.rollback()
            return [*problems, f"it could not be put on the target ({type(error).__name__}: {error})"]
        changes.commit()
        return problems

    def write_objects(self, changes: results.Changes, objects: list[bpy.types.Object],
                      image: bpy.types.Image) -> list[str]:
        """``image`` on the objects still there, through ``changes``: the target's; the lines it could not do."""
        return []

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
                                                mask_image=None, reference=None)
        if getattr(self.plan, "reference", None) is not None:
            self.plan.reference.spec = None  # the picture's pixels; its recipe entry is small
        if self.plan.recorder is not None:
            self.plan.recorder.release()


_live_runs: list[GenerationRun] = []


def shutdown() -> None:
    """The add-on is being disabled: cancel the running generation and remove its timer and status text."""
    for run in list(_live_runs):
        run.abandon()
