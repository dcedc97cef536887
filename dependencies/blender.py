"""The bpy half of ``dependencies``: the add-on's folders, online access, redraws and job plumbing.

The only module of this package that imports bpy. Every folder it names is
under ``bpy.utils.extension_path_user(<add-on package>)``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

import bpy

from . import activate
from .state import STATE, refresh_state

# This module is <add-on>.dependencies.blender: the add-on's package is two levels up.
ADDON_PACKAGE = __package__.rpartition(".")[0]
REDRAW_SECONDS = 0.25


def user_path(name: str) -> str:
    return bpy.utils.extension_path_user(ADDON_PACKAGE, path=name, create=False)


def site_packages_dir() -> str:
    """Where Install Dependencies puts the engine's packages and ``activate`` finds them."""
    return user_path("site-packages")


def staging_dir() -> str:
    return user_path("site-packages-staging")


def pip_temp_dir() -> str:
    return user_path("pip-tmp")


def activate_engine_packages() -> bool:
    """``activate(site_packages_dir())``: call on the main thread right before the engine is first imported."""
    return activate(site_packages_dir())


def engine_search_path() -> list[str]:
    """The ``sys.path`` the engine will have once the packages folder is activated (the probe uses it)."""
    from .probe import search_path_for

    return search_path_for(site_packages_dir(), sys.path)


def python_executable() -> str:
    """Blender's own Python (``sys.executable`` is it inside Blender since 2.91)."""
    return sys.executable


def online_access() -> bool:
    return bool(bpy.app.online_access)


def offline_reason(what: str) -> str:
    """The artist-facing sentence when ``what`` needs the network and Blender may not use it."""
    if getattr(bpy.app, "online_access_override", False):
        how = "Blender was started with --offline-mode; restart it without that option"
    else:
        how = "turn on Preferences ▸ System ▸ Network ▸ Allow Online Access"
    return f"Online access is off in Blender, so {what} cannot be downloaded: {how}, then try again."


def tag_preferences_redraw() -> None:
    window_manager = bpy.context.window_manager
    if window_manager is None:
        return
    for window in window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def _anything_running() -> bool:
    probing = STATE.probing is not None and STATE.probing.is_alive()
    return probing or STATE.installing or STATE.downloading()


def _redraw_tick() -> float | None:
    tag_preferences_redraw()
    return REDRAW_SECONDS if _anything_running() else None


def keep_preferences_live() -> None:
    """Redraw the preferences while a job or probe runs (and once after), whether or not its operator still runs."""
    if not bpy.app.background and not bpy.app.timers.is_registered(_redraw_tick):
        bpy.app.timers.register(_redraw_tick, first_interval=REDRAW_SECONDS)


def stop_redraws() -> None:
    if bpy.app.timers.is_registered(_redraw_tick):
        bpy.app.timers.unregister(_redraw_tick)


def refresh(cache_dir: str, torch_build: str, *, blocking: bool) -> None:
    """Re-probe packages, devices, the torch-build choice (``torch_build``) and the sizes in ``cache_dir``.

    Blocking in background mode; otherwise on a thread while the preferences keep drawing.
    The caller reads the preferences (on the main thread) and passes plain values.
    """
    from .catalog import CATALOG

    args = (STATE, python_executable(), engine_search_path(), cache_dir, torch_build,
            [model.repo_id for model in CATALOG])
    if blocking:
        refresh_state(*args)
        return
    if STATE.probing is not None and STATE.probing.is_alive():
        return
    STATE.probing = threading.Thread(target=_refresh_logged, args=args, name="latent_textures_probe", daemon=True)
    STATE.probing.start()
    keep_preferences_live()


def _refresh_logged(*args) -> None:
    try:
        refresh_state(*args)
    except Exception as error:  # shown in the preferences, with the traceback on the console
        import traceback

        traceback.print_exc()
        STATE.status_error = f"Checking the packages failed ({type(error).__name__}): {error}"


def shutdown() -> None:
    """Stop child processes and timers: the add-on is being disabled."""
    STATE.stop_all()
    stop_redraws()


# Blender quitting mid-install must not leave pip writing into the user folder.
atexit.register(STATE.stop_all)


def describe_folder(path: str) -> str:
    return path if os.path.isdir(path) else f"{path} (not created yet)"


class WatchJobMixin:
    """For operators that start a job: with a UI, stay modal until it ends and report its result.

    The operator subclass provides ``watched_result()`` (None while running) and
    ``finish(result)`` (reports, returns the operator's return set). Closing the
    window ends the modal part only; the job runs on and the preferences show its end.
    """

    _timer = None

    def watch(self, context) -> set[str]:
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(REDRAW_SECONDS, window=context.window)
        window_manager.modal_handler_add(self)
        keep_preferences_live()
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        result = self.watched_result()
        if result is None:
            return {"PASS_THROUGH"}
        self._unwatch(context)
        tag_preferences_redraw()
        return self.finish(result)

    def cancel(self, context) -> None:
        self._unwatch(context)

    def _unwatch(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


def wants_modal(operator, context) -> bool:
    """Modal only when started from the UI (``invoke``) in a Blender with windows; scripts and -b block."""
    return bool(getattr(operator, "run_modal", False)) and not bpy.app.background and context.window is not None
