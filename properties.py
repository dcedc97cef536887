"""Scene settings: ``bpy.types.Scene.latent_textures`` (names fixed by the contract)."""

import bpy

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
GUIDANCE_WARNING_ABOVE = 15.0
# Blender's IntProperty is a signed 32-bit integer.
MAX_SEED = 2**31 - 1

MODE_ITEMS = (
    ("TXT2IMG", "Text to Image", "Generate from the prompt alone"),
    ("IMG2IMG", "Image to Image", "Start from an image (a render, the viewport or an Image) and repaint it"),
)
SOURCE_ITEMS = (
    ("CAMERA", "Camera Render", "Render the scene camera at the requested size"),
    ("VIEWPORT", "Viewport", "The active 3D viewport as you see it (falls back to Camera without a window)"),
    ("IMAGE", "Image", "An existing Image datablock"),
)
SCHEDULER_ITEMS = (
    ("DPM_SOLVER_MULTISTEP", "DPM++ 2M", "Fast, good quality in 20-30 steps"),
    ("DPM_SOLVER_MULTISTEP_KARRAS", "DPM++ 2M Karras", "DPM++ 2M with Karras sigmas: cleaner at low step counts"),
    ("DDIM", "DDIM", "Deterministic, the classic choice"),
    ("EULER", "Euler", "Simple and fast"),
    ("EULER_ANCESTRAL", "Euler Ancestral", "Adds fresh noise each step: more variety, does not converge"),
    ("PNDM", "PNDM", "Stable Diffusion's original default"),
    ("LCM", "LCM", "For latent-consistency (LCM) models: 2-8 steps, guidance 1-2"),
    ("UNIPC", "UniPC", "Fast multistep solver, good at 10-20 steps"),
)
SEAMLESS_ITEMS = (
    ("NONE", "None", "An ordinary image"),
    ("X", "X", "Tiles horizontally"),
    ("Y", "Y", "Tiles vertically"),
    ("BOTH", "Both", "Tiles in both directions"),
)
CAPTURE_QUALITY_ITEMS = (
    ("FAST", "Fast", "At most 16 samples, denoised, 5 s render time limit: Blender pauses briefly while it renders"),
    ("SCENE", "Scene", "The scene's own render settings: Blender pauses for as long as a full render takes"),
)
TARGET_ITEMS = (
    ("IMAGE", "Image", "Only create the new image"),
    ("MATERIAL", "Material", "Put the image on the active object's material (Base Color)"),
    ("PROJECT", "Project from Camera", "Project the image onto the selected objects from the scene camera"),
)


class LatentTexturesSettings(bpy.types.PropertyGroup):
    prompt: bpy.props.StringProperty(
        name="Prompt", description="What to paint", default="",
    )
    negative_prompt: bpy.props.StringProperty(
        name="Negative Prompt", description="What to steer away from", default="",
    )
    model: bpy.props.StringProperty(
        name="Model",
        description="A Hugging Face repo id, a local diffusers folder, or a single-file .safetensors checkpoint",
        default=DEFAULT_MODEL,
    )
    mode: bpy.props.EnumProperty(name="Mode", items=MODE_ITEMS, default="TXT2IMG")
    source: bpy.props.EnumProperty(
        name="Source", description="The starting image for Image to Image", items=SOURCE_ITEMS, default="CAMERA",
    )
    source_image: bpy.props.PointerProperty(
        name="Source Image", description="The image to start from when Source is Image", type=bpy.types.Image,
    )
    strength: bpy.props.FloatProperty(
        name="Strength",
        description="How much of the source image is repainted (1 = all of it)",
        default=0.6, min=0.01, max=1.0, subtype="FACTOR",
    )
    width: bpy.props.IntProperty(
        name="Width", description="Image width in pixels (a multiple of 8)",
        default=512, min=64, max=4096, soft_max=2048, step=8, subtype="PIXEL",
    )
    height: bpy.props.IntProperty(
        name="Height", description="Image height in pixels (a multiple of 8)",
        default=512, min=64, max=4096, soft_max=2048, step=8, subtype="PIXEL",
    )
    steps: bpy.props.IntProperty(
        name="Steps", description="Denoising steps", default=25, min=1, max=500, soft_max=100,
    )
    guidance_scale: bpy.props.FloatProperty(
        name="Guidance",
        description="How strongly the prompt is followed (classifier-free guidance); 1 or less turns it off",
        default=7.5, min=0.0, max=30.0, soft_max=GUIDANCE_WARNING_ABOVE, precision=1, step=50,
    )
    scheduler: bpy.props.EnumProperty(name="Scheduler", items=SCHEDULER_ITEMS, default="DPM_SOLVER_MULTISTEP")
    seed: bpy.props.IntProperty(
        name="Seed", description="Noise seed; after a run, the seed that was used",
        default=0, min=0, max=MAX_SEED,
    )
    use_random_seed: bpy.props.BoolProperty(
        name="Random Seed", description="Pick a new seed for every run", default=True,
    )
    seamless: bpy.props.EnumProperty(
        name="Seamless", description="Make the texture tile", items=SEAMLESS_ITEMS, default="NONE",
    )
    target: bpy.props.EnumProperty(
        name="Target", description="Where the result goes", items=TARGET_ITEMS, default="MATERIAL",
    )
    keep_history: bpy.props.BoolProperty(
        name="Keep History",
        description="Keep earlier results in the material (a new node and UV map per run) instead of "
                    "replacing the previous texture and removing its image",
        default=False,
    )
    capture_quality: bpy.props.EnumProperty(
        name="Capture Quality", description="How the camera is rendered as the source image",
        items=CAPTURE_QUALITY_ITEMS, default="FAST",
    )
    result_image: bpy.props.PointerProperty(
        name="Result", description="The last image generated", type=bpy.types.Image,
    )


classes = (LatentTexturesSettings,)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.Scene.latent_textures = bpy.props.PointerProperty(type=LatentTexturesSettings)


def unregister() -> None:
    del bpy.types.Scene.latent_textures
    _unregister_classes()
