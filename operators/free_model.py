"""``latent_textures.free_model``: give the loaded model's memory back."""

import threading

import bpy


class LATENT_TEXTURES_OT_free_model(bpy.types.Operator):
    bl_idname = "latent_textures.free_model"
    bl_label = "Free Model"
    bl_description = "Release the loaded model and the (GPU) memory it holds"

    def execute(self, context):
        from ..bridge.job import busy_workers, current_job
        from ..engine import loaded_engine

        if current_job() is not None:
            self.report({"ERROR"}, "A generation is running: cancel it before freeing the model")
            return {"CANCELLED"}
        engine = loaded_engine()
        info = engine.loaded_model() if engine is not None else None
        if info is None:
            self.report({"INFO"}, "No model is loaded")
            return {"FINISHED"}
        stopping = busy_workers()
        if stopping:
            # A cancelled run still holds the engine until its current step ends: waiting for it here
            # would freeze Blender, so the model is freed on a thread as soon as it lets go.
            threading.Thread(target=_free_after, args=(stopping, engine), name="latent_textures_free",
                             daemon=True).start()
            self.report({"INFO"}, f"Freeing {info.source} as soon as the cancelled generation has stopped")
            return {"FINISHED"}
        engine.free()
        self.report({"INFO"}, f"Freed {info.source} ({info.device}, {info.dtype})")
        return {"FINISHED"}


def _free_after(workers: list[threading.Thread], engine) -> None:
    for worker in workers:
        worker.join()
    engine.free()
