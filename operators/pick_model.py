"""``latent_textures.pick_model``: a searchable list of the models found on disk, for the Model, LoRA or ControlNet field.

The list comes from the last scan (``dependencies.model_scan.SCAN``); the first
pick of a session scans (headers only) before the list opens, never a redraw.
LoRAs and ControlNets are filtered to the chosen model's family when both
families are known; those of unknown family are offered too, marked.
"""

import bpy

TARGET_ITEMS = (
    ("MODEL", "Model", "The Stable Diffusion model (a checkpoint, a diffusers folder or a cached repo id)"),
    ("LORA", "LoRA", "Add a LoRA to the LoRA list"),
    ("CONTROLNET", "ControlNet", "The ControlNet model"),
)
KIND_OF_TARGET = {"MODEL": "CHECKPOINT", "LORA": "LORA", "CONTROLNET": "CONTROLNET"}
_items_alive: list = []  # Blender keeps only pointers to dynamic enum strings: they must stay referenced


def choices(settings, target: str) -> list:
    """``(path, entry)`` pairs to offer for ``target``: the right kind, fitting the model's family."""
    from ..dependencies.model_scan import SCAN, fits_family

    kind = KIND_OF_TARGET[target]
    model = SCAN.find(settings.model)
    family = model.family if model is not None and target != "MODEL" else None
    return [entry for entry in SCAN.entries if entry.kind == kind and fits_family(entry, family) is not False]


def _choice_items(self, context):
    from ..dependencies.model_scan import FAMILY_LABELS

    settings = context.scene.latent_textures
    items = []
    for entry in choices(settings, self.target):
        family = FAMILY_LABELS.get(entry.family, "family unknown")
        mark = " (unreadable)" if entry.problem else " (refused: pickle)" if entry.refused else ""
        items.append((entry.path, f"{entry.name} · {family}{mark}", f"{entry.describe()} · {entry.origin}"))
    _items_alive[:] = items or [("NONE", "Nothing found: add model folders in the preferences and Scan", "")]
    return _items_alive


def apply_choice(settings, target: str, path: str) -> str | None:
    """Put ``path`` into the field ``target`` names; the reason when this build has no such field.

    The LoRA list (``loras``, items with ``source``) and ``control_model`` come with issue 10's
    properties: where they do not exist yet the choice is refused with a clear message.
    """
    if target == "MODEL":
        settings.model = path
    elif target == "CONTROLNET":
        if not hasattr(settings, "control_model"):
            return "This version has no ControlNet field"
        settings.control_model = path
    else:
        loras = getattr(settings, "loras", None)
        if loras is None:
            return "This version has no LoRA list"
        loras.add().source = path
    return None


class LATENT_TEXTURES_OT_pick_model(bpy.types.Operator):
    bl_idname = "latent_textures.pick_model"
    bl_label = "Pick a Model on Disk"
    bl_description = (
        "Search the models found in the model folders and the Hugging Face caches (Preferences ▸ Add-ons ▸ "
        "Latent Textures). LoRAs and ControlNets are filtered to the chosen model's family"
    )
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "choice"

    target: bpy.props.EnumProperty(items=TARGET_ITEMS, default="MODEL", options={"SKIP_SAVE"})
    choice: bpy.props.EnumProperty(name="Model", items=_choice_items, options={"SKIP_SAVE"})

    def invoke(self, context, event):
        from ..dependencies.model_scan import SCAN
        from .scan_models import scan_models

        if not SCAN.scanned:
            scan_models(context)
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if self.choice == "NONE":
            self.report({"ERROR"}, "No models found: add model folders in the add-on's preferences, then Scan")
            return {"CANCELLED"}
        reason = apply_choice(context.scene.latent_textures, self.target, self.choice)
        if reason is not None:
            self.report({"ERROR"}, reason)
            return {"CANCELLED"}
        return {"FINISHED"}
