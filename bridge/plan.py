"""Before a generation runs: the settings checked, the request built, and the target's capture, nothing created.

Each target (``image_target``, ``material_target``, ``project_target``, ``object_target``) plugs into
``prepare`` as a ``Target``; ``targets`` lists them by the scene's ``target`` setting. This module knows none
of them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import bpy

from ..preferences import get_preferences
from . import insight, pbr_maps_writer, reference, requests
from .job import current_job


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
    target_capture: object = None  # what the target read before the run (e.g. the camera projection), its own type
    upscale: object = None  # Upscale After Generate: an UpscaleRequest without its image yet
    material_maps: object = None  # Material Maps: a MaterialMapsRequest without its image yet
    mask_name: str | None = None  # INPAINT: the mask Image used (None: the source's alpha)
    recorder: object = None  # engine.insight.InsightRecorder when the filmstrip / attention maps are asked for
    preview_decoder: str = "LINEAR"  # the preference "Live Preview"
    reference: object = None  # reference.Reference: the image prompt and its recipe entry (None: no reference)


@dataclass(frozen=True)
class Target:
    """Where a generation's result goes: how it plugs into ``prepare`` and which run writes it."""

    # The objects it writes to, by name, checked (ValueError with the fix).
    objects: Callable[[bpy.types.Context], list[str]]
    # (context, settings, plan, those objects) -> None: reads what the run needs before the engine runs.
    capture: Callable[..., None]
    # The plan -> its started run (a ``run.GenerationRun``).
    start: Callable[[Plan], object]
    # Why it records no filmstrip or attention maps ("": it records them).
    no_insight: str = ""


def prepare(context: bpy.types.Context, target: Target, *, place_result: bool = True) -> Plan:
    """Check the settings and targets, capture what ``target`` needs. Raises ValueError with a clear message.

    ``place_result=False``: the result only becomes an image (comparison grids): no target object is checked.
    """
    check_no_job_running()
    check_engine_packages()
    settings = context.scene.latent_textures
    request = requests.request_from_settings(settings)
    requests.validate_settings(request)
    plan = Plan(request, requests.options_from_preferences(context), settings.target)
    reference.plan_reference(settings, plan)
    plan.recorder = insight.recorder_from_settings(settings) if place_result else None
    if plan.recorder is not None and target.no_insight:
        plan.recorder = None
        plan.notes.append(target.no_insight)
    plan.preview_decoder = getattr(get_preferences(context), "preview_decoder", "LINEAR")
    plan.keep_history = settings.keep_history
    plan.upscale = requests.upscale_after_generate(settings, request, plan.options) if place_result else None
    if place_result:
        plan.material_maps = pbr_maps_writer.maps_after_generate(settings, plan.options)
        plan.object_names = target.objects(context)
    objects = [bpy.data.objects[name] for name in plan.object_names]
    plan.object_ids = [object_identity(obj) for obj in objects]
    target.capture(context, settings, plan, objects)
    return plan


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


def object_identity(obj: bpy.types.Object) -> int:
    """Stays with the object through renames; never reused within a session (``session_uid``, Blender 4.2+)."""
    return obj.session_uid


def find_object(name: str, identity: int) -> bpy.types.Object | None:
    """The object captured as ``name`` at the start, under whatever name it has now; None if it was deleted."""
    obj = bpy.data.objects.get(name)
    if obj is not None and object_identity(obj) == identity:
        return obj
    return next((o for o in bpy.data.objects if object_identity(o) == identity), None)
