"""``latent_textures.remove_cached_model``: delete a downloaded model from the model cache folder."""

import bpy


class LATENT_TEXTURES_OT_remove_cached_model(bpy.types.Operator):
    bl_idname = "latent_textures.remove_cached_model"
    bl_label = "Remove Model"
    bl_description = "Delete this model's files from the model cache folder (download it again to use it)"

    repo_id: bpy.props.StringProperty(
        name="Model", description="Hugging Face repo id of the cached model", default="", options={"SKIP_SAVE"},
    )

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(
            self, event, title="Remove Model", message=f"Delete {self.repo_id} from the model cache?",
            confirm_text="Remove", icon="TRASH",
        )

    def execute(self, context):
        from ..dependencies import blender
        from ..dependencies.hf_cache import remove_cached_model, validate_repo_id
        from ..dependencies.probe import format_bytes
        from ..dependencies.state import STATE, measure_cache
        from ..preferences import get_preferences

        try:
            repo_id = validate_repo_id(self.repo_id)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if STATE.downloading(repo_id):
            self.report({"ERROR"}, f"{repo_id} is downloading: cancel the download first")
            return {"CANCELLED"}
        cache_dir = get_preferences(context).resolved_model_cache_dir()
        try:
            freed = remove_cached_model(cache_dir, repo_id)
        except FileNotFoundError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        except OSError as error:  # Windows: a loaded model's files are locked
            self.report({"ERROR"}, f"Could not delete {repo_id} ({error}); free the model (Free Model) and retry")
            return {"CANCELLED"}
        STATE.downloads.pop(repo_id, None)
        measure_cache(STATE, cache_dir, [repo_id])
        self.report({"INFO"}, f"Removed {repo_id} ({format_bytes(freed)} freed)")
        return {"FINISHED"}
