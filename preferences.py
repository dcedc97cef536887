"""Add-on preferences: where models live and what hardware runs them."""

import bpy

DEVICE_ITEMS = (
    ("AUTO", "Auto", "CUDA if present, then Apple MPS, then the CPU"),
    ("CUDA", "CUDA", "An NVIDIA GPU (or AMD through ROCm)"),
    ("MPS", "MPS", "Apple Silicon GPU"),
    ("CPU", "CPU", "The processor: slow but always there"),
)
PRECISION_ITEMS = (
    ("AUTO", "Auto", "fp16 on GPUs (bf16 where the card supports it), fp32 on the CPU"),
    ("FP16", "fp16", "Half precision: half the memory on GPUs"),
    ("BF16", "bf16", "bfloat16: half the memory, fewer overflows than fp16 on recent cards"),
    ("FP32", "fp32", "Full precision: needed by GTX 16xx cards and the CPU"),
)


def default_model_cache_dir() -> str:
    return bpy.utils.extension_path_user(__package__, path="models", create=False)


class LatentTexturesPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model_cache_dir: bpy.props.StringProperty(
        name="Model Cache",
        description="Folder that downloaded models are stored in (empty: the add-on's user folder)",
        default="",
        subtype="DIR_PATH",
    )
    device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO")
    precision: bpy.props.EnumProperty(name="Precision", items=PRECISION_ITEMS, default="AUTO")
    attention_slicing: bpy.props.BoolProperty(
        name="Attention Slicing", description="Less GPU memory for a little speed", default=False,
    )
    cpu_offload: bpy.props.BoolProperty(
        name="CPU Offload",
        description="Keep only the running model part on the GPU: for cards with 4-6 GB",
        default=False,
    )
    allow_pickle: bpy.props.BoolProperty(
        name="Allow Pickle Checkpoints",
        description=(
            "Load .ckpt/.bin/.pt files. They can run arbitrary code when loaded: "
            "only enable this for files you trust"
        ),
        default=False,
    )

    def resolved_model_cache_dir(self) -> str:
        if self.model_cache_dir:
            return bpy.path.abspath(self.model_cache_dir)
        return default_model_cache_dir()

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False

        col = layout.column(heading="Models")
        col.prop(self, "model_cache_dir")
        if not self.model_cache_dir:
            col.label(text=default_model_cache_dir(), icon="FILE_FOLDER")
        col.prop(self, "allow_pickle")

        col = layout.column(heading="Hardware")
        col.prop(self, "device")
        col.prop(self, "precision")
        col.prop(self, "attention_slicing")
        col.prop(self, "cpu_offload")


def get_preferences(context) -> LatentTexturesPreferences:
    return context.preferences.addons[__package__].preferences


classes = (LatentTexturesPreferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
