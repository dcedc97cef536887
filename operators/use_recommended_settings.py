"""``latent_textures.use_recommended_settings``: size, steps, guidance and scheduler the model's family is made for."""

import os

import bpy

LABELS = {"width": "Width", "height": "Height", "steps": "Steps", "guidance_scale": "Guidance", "scheduler": "Scheduler"}


def model_family(context, model: str):
    """The family of the model setting, without loading weights: the model in memory, else its configs.

    Returns (family or None, why it is unknown).
    """
    from ..bridge.requests import model_in_memory, resolve_model_path
    from ..dependencies.hf_cache import cached_model
    from ..engine.families import ModelFamily, family_from_folder
    from ..engine.files import is_repo_id
    from ..preferences import get_preferences

    location = resolve_model_path(model)
    info = model_in_memory(model)
    if info is not None:
        return ModelFamily(info.family, info.prediction_type, info.few_step), ""
    folder = os.path.expanduser(location)
    if os.path.isdir(folder):
        family = family_from_folder(folder)
        return family, "" if family is not None else f"{location} has no readable unet/scheduler configs"
    if is_repo_id(location):
        cached = cached_model(get_preferences(context).resolved_model_cache_dir(), location, measure=False)
        if cached is not None and cached.snapshot is not None:
            family = family_from_folder(cached.snapshot)
            if family is not None:
                return family, ""
        return None, f"{location} is not downloaded yet: download it (or Generate once), then try again"
    return None, "a single-file checkpoint's family is known once it is loaded: Generate once, then try again"


class LATENT_TEXTURES_OT_use_recommended_settings(bpy.types.Operator):
    bl_idname = "latent_textures.use_recommended_settings"
    bl_label = "Use Recommended Settings"
    bl_description = (
        "Set the size, steps, guidance and scheduler the model's family is made for (SDXL: 1024 px; LCM/turbo: "
        "4 steps, guidance 1, LCM). Read from the model's configs, nothing is loaded; the report lists each change"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from ..engine.families import recommended_settings

        settings = context.scene.latent_textures
        family, why = model_family(context, settings.model)
        if family is None:
            self.report({"ERROR"}, f"Cannot tell which kind of model this is: {why}")
            return {"CANCELLED"}
        changes = []
        for name, value in recommended_settings(family).items():
            current = getattr(settings, name)
            if current != value and not (isinstance(value, float) and abs(current - value) < 1e-6):
                changes.append(f"{LABELS[name]} {current:g} -> {value:g}" if not isinstance(value, str)
                               else f"{LABELS[name]} {current} -> {value}")
                setattr(settings, name, value)
        if not changes:
            self.report({"INFO"}, f"The settings already suit this {family.label} model")
            return {"FINISHED"}
        self.report({"INFO"}, f"Recommended for {family.label}: " + ", ".join(changes))
        return {"FINISHED"}
