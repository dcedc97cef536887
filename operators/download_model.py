"""``latent_textures.download_model``: fetch a model from the Hugging Face Hub into the model cache folder."""

from __future__ import annotations

import bpy

from ..dependencies.blender import WatchJobMixin


class LATENT_TEXTURES_OT_download_model(WatchJobMixin, bpy.types.Operator):
    bl_idname = "latent_textures.download_model"
    bl_label = "Download Model"
    bl_description = (
        "Download this model's weights (safetensors only) into the model cache folder. Needs Blender's "
        "online access; gated models need a Hugging Face login (HF_TOKEN or `hf auth login`)"
    )

    repo_id: bpy.props.StringProperty(
        name="Model", description="Hugging Face repo id, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5",
        default="", options={"SKIP_SAVE"},
    )
    run_modal: bpy.props.BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        self.run_modal = True
        return self.execute(context)

    def execute(self, context):
        from ..dependencies import blender
        from ..dependencies.download import DownloadJob, download_variant
        from ..dependencies.hf_cache import cached_model, validate_repo_id
        from ..dependencies.state import STATE
        from ..preferences import get_preferences

        try:
            repo_id = validate_repo_id(self.repo_id)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if STATE.downloading(repo_id):
            self.report({"ERROR"}, f"{repo_id} is already downloading")
            return {"CANCELLED"}
        prefs = get_preferences(context)
        for folder, label in prefs.hub_caches():  # a model any cache holds is never downloaded again
            cached = cached_model(folder, repo_id, measure=False)
            if cached is not None and cached.complete:
                self.report({"INFO"}, f"{repo_id} is already downloaded (in the {label}: {folder})")
                return {"FINISHED"}
        cache_dir = prefs.resolved_download_dir()
        # The gate: nothing below this line runs without Blender's permission to go online.
        if not blender.online_access():
            self.report({"ERROR"}, blender.offline_reason(repo_id))
            return {"CANCELLED"}
        devices = STATE.status.devices if STATE.status is not None else ()
        variant = download_variant(prefs.device, prefs.precision, devices)  # the files the engine will load
        job = DownloadJob(blender.python_executable(), blender.engine_search_path(), repo_id, cache_dir,
                          variant=variant)
        STATE.downloads[repo_id] = job
        self._job = job
        if blender.wants_modal(self, context):
            job.start()
            self.report({"INFO"}, f"Downloading {repo_id}… (progress in the add-on's preferences)")
            return self.watch(context)
        return self.finish(job.run())

    def watched_result(self):
        return self._job.result

    def finish(self, result):
        from ..dependencies.state import STATE, measure_cache

        measure_cache(STATE, self._job.cache_dir, [self._job.repo_id])
        if result.ok:
            self.report({"INFO"}, result.message)
            return {"FINISHED"}
        self.report({"WARNING"} if result.cancelled else {"ERROR"}, result.message)
        return {"CANCELLED"}
