"""Insight (docs/insight.md): the denoising filmstrip, attention maps, the comparison grid."""

import bpy

from .sampling import SCHEDULER_ITEMS


class InsightSettings:
    """The Insight section."""

    record_filmstrip: bpy.props.BoolProperty(
        name="Filmstrip",
        description="Also make a contact sheet of every denoising step: the model's guess of the finished image "
        "and the noisy latent (slower: one extra VAE decode per step)",
        default=False,
    )
    record_attention: bpy.props.BoolProperty(
        name="Attention Maps",
        description="Also make one heat map per prompt word: where in the image the model attended to that word",
        default=False,
    )
    compare_guidance: bpy.props.StringProperty(
        name="Guidance Values",
        description="Comparison grid: the guidance values along the row, comma separated",
        default="1, 3, 7.5, 12, 20",
    )
    compare_axis: bpy.props.EnumProperty(
        name="Rows", description="Comparison grid: what changes from row to row",
        items=(
            ("SCHEDULER", "Schedulers", "One row per scheduler"),
            ("STEPS", "Steps", "One row per step count"),
        ),
        default="SCHEDULER",
    )
    compare_schedulers: bpy.props.EnumProperty(
        name="Schedulers", description="Comparison grid: one row per scheduler",
        items=SCHEDULER_ITEMS, options={"ENUM_FLAG"}, default={"DPM_SOLVER_MULTISTEP", "EULER", "DDIM"},
    )
    compare_steps: bpy.props.StringProperty(
        name="Step Counts", description="Comparison grid: one row per step count, comma separated",
        default="10, 25, 40",
    )
