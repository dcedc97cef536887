"""Sampling: steps, guidance, scheduler and seed."""

import bpy

GUIDANCE_WARNING_ABOVE = 15.0
# Blender's IntProperty is a signed 32-bit integer.
MAX_SEED = 2**31 - 1
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


class SamplingSettings:
    """The Sampling section."""

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
