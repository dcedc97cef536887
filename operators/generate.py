"""``latent_textures.generate``: run the scene's settings and put the texture in place."""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy


@dataclass
class _Plan:
    request: object
    options: object
    target: str
    object_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class LATENT_TEXTURES_OT_generate(bpy.types.Operator):
    bl_idname = "latent_textures.generate"
    bl_label = "Generate"
    bl_description = "Generate a texture from the prompt (Esc cancels)"
    bl_options = {"REGISTER", "UNDO"}

    TIMER_INTERVAL = 0.1

    @classmethod
    def poll(cls, context):
        """Needs a scene with the add-on's settings."""
        return context.scene is not None and hasattr(context.scene, "latent_textures")

    # -- entry points -------------------------------------------------------
    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        from ..bridge.job import GenerationJob, set_current_job

        plan = self._prepare(context)
        if plan is None:
            return {"CANCELLED"}
        self._plan = plan
        self._job = GenerationJob(plan.options, plan.request)
        set_current_job(self._job)
        self._job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(self.TIMER_INTERVAL, window=context.window)
        wm.modal_handler_add(self)
        self._status(context, f"Latent Textures: loading model… (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def execute(self, context):
        """Synchronous: background mode and scripts. Same steps as the modal path, no timer."""
        from ..bridge.job import GenerationJob, set_current_job

        plan = self._prepare(context)
        if plan is None:
            return {"CANCELLED"}
        job = GenerationJob(plan.options, plan.request)
        set_current_job(job)
        try:
            job.run()
            return self.finish(context, plan, job.drain())
        finally:
            set_current_job(None)

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
            self._status(context, "Latent Textures: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        return self.drain_and_apply(context)

    def drain_and_apply(self, context):
        """One timer tick: show progress; once the worker is done, write the result. Main thread."""
        from ..bridge import preview
        from ..bridge.job import set_current_job

        job, plan = self._job, self._plan
        events = job.drain()
        latest = next((e for e in reversed(events) if e.kind == "progress"), None)
        if latest is not None:
            self._status(context, f"Latent Textures: step {latest.payload.step}/{latest.payload.total} (Esc to cancel)")
            if latest.payload.preview is not None:
                preview.show(context, latest.payload.preview)
        _redraw_panels(context)
        if not job.finished:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        self._status(context, None)
        set_current_job(None)
        preview.remove(context)
        result = self.finish(context, plan, events)
        _redraw_panels(context)
        return result

    # -- steps --------------------------------------------------------------
    def _prepare(self, context) -> _Plan | None:
        """Check everything and capture the img2img source; creates nothing. None after an ERROR report."""
        from ..bridge import capture, requests
        from ..bridge.job import current_job

        if current_job() is not None:
            self.report({"ERROR"}, "A generation is already running: wait for it or cancel it first")
            return None
        settings = context.scene.latent_textures
        try:
            request = requests.request_from_settings(settings)
            requests.validate_settings(request)
            plan = _Plan(request, requests.options_from_preferences(context), settings.target)
            plan.object_names = self._check_target(context, settings.target)
            if settings.mode == "IMG2IMG":
                request.init_image = self._capture(context, settings, plan, capture)
            request.validate()
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return None
        except RuntimeError as error:
            self.report({"ERROR"}, f"Could not capture the source image: {error}")
            return None
        for note in plan.notes:
            self.report({"INFO"}, note)
        return plan

    @staticmethod
    def _check_target(context, target: str) -> list[str]:
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
            meshes: dict[str, str] = {}
            for obj in objects:
                if obj.data.name in meshes:
                    raise ValueError(
                        f"'{obj.name}' and '{meshes[obj.data.name]}' share the mesh '{obj.data.name}': one UV "
                        "projection cannot serve both. Make them single-user (Object > Relations) first"
                    )
                meshes[obj.data.name] = obj.name
            return [o.name for o in objects]
        return []

    @staticmethod
    def _capture(context, settings, plan: _Plan, capture):
        width, height = settings.width, settings.height
        if settings.source == "IMAGE":
            return capture.capture_image(settings.source_image, width, height)
        if settings.source == "VIEWPORT":
            if not bpy.app.background and context.screen is not None:
                return capture.capture_viewport(context, width, height)
            plan.notes.append("No viewport in background mode: used a camera render as the source instead")
        return capture.capture_camera(context.scene, width, height)

    def finish(self, context, plan: _Plan, events) -> set[str]:
        """Act on the worker's final event: write the result, or report why there is none."""
        from ..bridge import results

        final = next((e for e in reversed(events) if e.kind != "progress"), None)
        if final is None:
            self.report({"ERROR"}, "The generation ended without a result")
            return {"CANCELLED"}
        if final.kind == "cancelled":
            self.report({"WARNING"}, "Generation cancelled: nothing was changed")
            return {"CANCELLED"}
        if final.kind == "error":
            self.report({"ERROR"}, final.payload)
            return {"CANCELLED"}

        result = final.payload
        settings = context.scene.latent_textures
        recipe = dict(result.recipe, target=plan.target)
        changes = results.Changes()
        try:
            image = results.create_result_image(changes, result.image, recipe)
            if plan.target == "MATERIAL":
                results.apply_to_material(changes, bpy.data.objects[plan.object_names[0]], image)
            elif plan.target == "PROJECT":
                objects = [bpy.data.objects[name] for name in plan.object_names]
                results.apply_projection(changes, context, objects, image, plan.request.width, plan.request.height)
            changes.set(settings, "result_image", image)
            changes.set(settings, "seed", result.seed)
        except Exception as error:
            changes.rollback()
            self.report({"ERROR"}, f"Could not write the result: {error}")
            return {"CANCELLED"}
        from ..bridge import preview

        preview.show_result(context, image)
        self.report({"INFO"}, f"Generated '{image.name}' (seed {result.seed})")
        return {"FINISHED"}

    @staticmethod
    def _status(context, text: str | None) -> None:
        if context.workspace is not None:
            context.workspace.status_text_set(text)


def _redraw_panels(context) -> None:
    screen = context.screen
    if screen is None:
        return
    for area in screen.areas:
        if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
            area.tag_redraw()
