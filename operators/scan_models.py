"""``latent_textures.scan_models``: find the models in the model folders and the Hugging Face caches (headers only)."""

import bpy


def scan_models(context) -> None:
    """Rescan what the preferences name (files unchanged since the last scan are not read again)."""
    from ..dependencies.model_scan import SCAN
    from ..preferences import get_preferences

    prefs = get_preferences(context)
    SCAN.update(prefs.model_folder_paths(), prefs.hub_caches(), prefs.allow_pickle)


class LATENT_TEXTURES_OT_scan_models(bpy.types.Operator):
    bl_idname = "latent_textures.scan_models"
    bl_label = "Scan Model Folders"
    bl_description = (
        "Find checkpoints, LoRAs and ControlNets in the model folders and both Hugging Face caches. Reads only "
        "each file's header (never the weights) and never the network"
    )

    def execute(self, context):
        from ..dependencies.model_scan import SCAN

        scan_models(context)
        problems = sum(1 for entry in SCAN.entries if entry.problem)
        message = f"Found {len(SCAN.entries)} models in {SCAN.seconds * 1000:.0f} ms"
        if problems:
            message += f"; {problems} unreadable (see the add-on's preferences)"
        if SCAN.missing:
            message += f"; folder not found: {', '.join(SCAN.missing)}"
        self.report({"WARNING"} if problems or SCAN.missing else {"INFO"}, message)
        return {"FINISHED"}
