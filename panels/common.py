"""Drawing shared by the 3D View and Image Editor panels. Drawing only: no data changes."""

from ..properties import GUIDANCE_WARNING_ABOVE


def draw_prompt(layout, settings) -> None:
    col = layout.column(align=True)
    col.prop(settings, "prompt", text="", placeholder="Prompt", icon="TEXT")
    col.prop(settings, "negative_prompt", text="", placeholder="Negative prompt", icon="REMOVE")


def draw_input(layout, settings) -> None:
    layout.use_property_split = True
    layout.use_property_decorate = False
    layout.prop(settings, "mode")
    if settings.mode == "IMG2IMG":
        layout.prop(settings, "source")
        if settings.source == "IMAGE":
            layout.template_ID(settings, "source_image", open="image.open")
        layout.prop(settings, "strength", slider=True)
    col = layout.column(align=True)
    col.prop(settings, "width", text="Size X")
    col.prop(settings, "height", text="Y")
    if settings.width % 8 or settings.height % 8:
        col.label(text="Width and height must be multiples of 8", icon="ERROR")
    layout.prop(settings, "seamless")
    layout.prop(settings, "target")


def draw_sampling(layout, settings) -> None:
    layout.use_property_split = True
    layout.use_property_decorate = False
    layout.prop(settings, "steps")
    layout.prop(settings, "guidance_scale")
    if settings.guidance_scale > GUIDANCE_WARNING_ABOVE:
        layout.label(text=f"Guidance above {GUIDANCE_WARNING_ABOVE:g} tends to burn colours", icon="ERROR")
    layout.prop(settings, "scheduler")
    row = layout.row(align=True, heading="Seed")
    sub = row.row(align=True)
    sub.active = not settings.use_random_seed
    sub.prop(settings, "seed", text="")
    row.prop(settings, "use_random_seed", text="", icon="FILE_REFRESH")


def draw_model(layout, settings) -> None:
    from ..engine import loaded_engine

    row = layout.row(align=True)
    row.prop(settings, "model", text="")
    row.operator("latent_textures.browse_model", text="", icon="FILEBROWSER")
    layout.operator("latent_textures.use_recommended_settings", icon="PRESET")
    engine = loaded_engine()
    info = engine.loaded_model() if engine is not None else None
    if info is None:
        layout.label(text="No model loaded", icon="INFO")
        return
    box = layout.box()
    col = box.column(align=True)
    col.label(text=info.source, icon="CHECKMARK")
    col.label(text=f"{info.family}{' few-step' if info.few_step else ''} · {info.device} · {info.dtype}")
    for hint in model_hints(info, settings):
        col.label(text=hint, icon="INFO")
    layout.operator("latent_textures.free_model", icon="TRASH")


def model_hints(info, settings) -> list[str]:
    """What the model in memory does not use of the settings (it is not loaded for this: drawing loads nothing)."""
    hints = []
    if info.few_step:
        hints.append("Few-step model: 1-8 steps, guidance 0-1")
    if settings.negative_prompt.strip() and (not info.negative_prompt or settings.guidance_scale <= 1):
        hints.append("The negative prompt has no effect on this model" if not info.negative_prompt
                     else "The negative prompt needs guidance above 1")
    return hints


def draw_generate(layout, settings) -> None:
    from ..bridge.job import current_job

    job = current_job()
    if job is None:
        row = layout.row()
        row.scale_y = 1.5
        row.operator("latent_textures.generate", icon="SHADERFX")
    else:
        layout.progress(factor=min(job.step / max(job.total, 1), 1.0), type="BAR", text=job.describe())
        layout.operator("latent_textures.cancel", icon="CANCEL")
    if settings.result_image is not None:
        layout.label(text=settings.result_image.name, icon="IMAGE_DATA")
