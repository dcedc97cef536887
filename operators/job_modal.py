"""What every operator that runs the engine shares: modal on a worker thread with a UI, synchronous headless.

An operator mixes this in and implements ``_start(context)``, returning a
started-nothing-yet run (``bridge.run.GenerationRun`` or a subclass) or None
after reporting why it cannot start.
"""

import bpy


class JobOperator:
    TIMER_INTERVAL = 0.1
    _run = None

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        run.start()
        self._run = run
        wm = context.window_manager
        timer = wm.event_timer_add(self.TIMER_INTERVAL, window=context.window)
        workspace = context.workspace
        # However the run ends (finished, an error, the add-on disabled): no timer or status text left behind.
        run.on_end = lambda: _end_ui(wm, timer, workspace)
        wm.modal_handler_add(self)
        _status(context, "Latent Textures: loading model… (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def execute(self, context):
        """Synchronous (background mode and scripts): the modal path's steps without the timer."""
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        try:
            run.run_here()
            outcome = run.tick(context)
        except BaseException:
            run.abandon()
            raise
        return self._forward(run, outcome)

    def modal(self, context, event):
        run = self._run
        if run is None or run.ended:  # ended elsewhere (the add-on was disabled)
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            run.job.cancel()
            _status(context, "Latent Textures: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        outcome = run.tick(context)  # never raises; its end removes the timer and status text
        _redraw_panels(context)
        if outcome is None:
            _status(context, f"Latent Textures: {run.job.describe()} (Esc to cancel)")
            return {"RUNNING_MODAL"}
        return self._forward(run, outcome)

    def cancel(self, context):
        """Blender tears the modal operator down (file load, quit): stop the worker too."""
        if self._run is not None:
            self._run.abandon()
            self._run = None

    def _start(self, context):
        raise NotImplementedError

    def _forward(self, run, outcome: str) -> set[str]:
        for level, message in run.reports:
            self.report({level}, message)
        self._run = None  # Blender keeps finished operators: they must not keep the run's arrays alive
        return {outcome}


def _end_ui(window_manager, timer, workspace) -> None:
    window_manager.event_timer_remove(timer)
    if workspace is not None:
        workspace.status_text_set(None)


def _status(context, text) -> None:
    if context.workspace is not None:
        context.workspace.status_text_set(text)


def _redraw_panels(context) -> None:
    if context.screen is None:
        return
    for area in context.screen.areas:
        if area.type in {"VIEW_3D", "IMAGE_EDITOR"}:
            area.tag_redraw()
