"""Drawing shared by the 3D View and Image Editor panels. Drawing only: no data changes."""

from ..properties.sampling import GUIDANCE_WARNING_ABOVE


def draw_prompt(layout, settings) -> None:
    col = layout.column(align=True)
    col.prop(settings, "prompt", text="", placeholder="Prompt", icon="TEXT")
    col.prop(settings, "negative_prompt", text="", placeholder="Negative prompt", icon="REMOVE")
    draw_prompt_tokens(layout, settings)


def draw_input(layout, settings) -> None:
    layout.use_property_split = True
    layout.use_property_decorate = False
    layout.prop(settings, "mode")
    if settings.mode in ("IMG2IMG", "INPAINT"):
        layout.prop(settings, "source")
        if settings.source == "IMAGE":
            layout.template_ID(settings, "source_image", open="image.open")
        elif settings.source == "CAMERA":
            layout.prop(settings, "capture_quality")
        if settings.mode == "INPAINT":
            layout.template_ID(settings, "mask_image", open="image.open")
            if settings.mask_image is None:
                layout.label(text="No mask: repaints where the source image is transparent", icon="INFO")
            layout.prop(settings, "mask_blur")
        layout.prop(settings, "strength", slider=True)
    col = layout.column(align=True)
    col.prop(settings, "width", text="Size X")
    col.prop(settings, "height", text="Y")
    if settings.width % 8 or settings.height % 8:
        col.label(text="Width and height must be multiples of 8", icon="ERROR")
    layout.prop(settings, "seamless")
    layout.prop(settings, "target")
    if settings.target in {"MATERIAL", "PROJECT", "OBJECT"}:
        layout.prop(settings, "keep_history")
    if settings.target == "OBJECT":
        draw_whole_object(layout, settings)


def draw_whole_object(layout, settings) -> None:
    """The Whole Object settings and, before clicking, how much work they make."""
    from ..bridge.object_target import grid_warnings, work_estimate

    col = layout.column(align=True)
    col.template_ID(settings, "view_collection")
    sub = col.row(align=True)
    sub.active = settings.view_collection is None
    sub.prop(settings, "object_views")
    layout.prop(settings, "object_method")
    if settings.object_method == "SYNC":
        layout.prop(settings, "sync_fraction")
        layout.prop(settings, "sync_attention")
    if settings.object_method in {"GRID", "SEQUENTIAL"}:
        layout.prop(settings, "color_match")
    layout.prop(settings, "texture_size")
    layout.prop(settings, "keep_view_images")
    problem, estimate = work_estimate(settings)
    layout.label(text=problem or estimate, icon="ERROR" if problem else "INFO")
    if problem is None:
        for warning in grid_warnings(settings, known_family(settings)):
            layout.label(text=warning, icon="ERROR")


def known_family(settings) -> tuple[str, str] | None:
    """(family, prediction type) of the Model setting as far as the add-on knows without loading or reading
    anything: the model in memory, else the last model scan (which does not read the prediction type: an SD 2.x
    model counts as the 512 px base); None where unknown."""
    from ..bridge.requests import model_in_memory
    from ..dependencies.model_scan import SCAN

    info = model_in_memory(settings.model)
    if info is not None:
        return info.family, info.prediction_type
    entry = SCAN.find(settings.model)
    return (entry.family, "epsilon") if entry is not None and entry.family is not None else None


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
    row.operator("latent_textures.pick_model", text="", icon="VIEWZOOM").target = "MODEL"
    row.operator("latent_textures.browse_model", text="", icon="FILEBROWSER")
    draw_model_checks(layout, settings)
    if hasattr(settings, "control_model") or hasattr(settings, "loras"):  # issue 10's fields, where present
        row = layout.row(align=True)
        if hasattr(settings, "loras"):
            row.operator("latent_textures.pick_model", text="Add LoRA", icon="VIEWZOOM").target = "LORA"
        if hasattr(settings, "control_model"):
            row.operator("latent_textures.pick_model", text="ControlNet", icon="VIEWZOOM").target = "CONTROLNET"
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
    if info.origin in ("CACHE", "DOWNLOAD"):
        col.label(text=f"{'Downloaded to' if info.origin == 'DOWNLOAD' else 'From'} the {_cache_name(info.cache_dir)}")
        col.label(text=info.files)
    layout.operator("latent_textures.free_model", icon="TRASH")


def _cache_name(cache_dir) -> str:
    import os

    import bpy

    from ..preferences import get_preferences

    for folder, label in get_preferences(bpy.context).hub_caches():
        if cache_dir and os.path.normpath(folder) == os.path.normpath(cache_dir):
            return f"{label} ({folder})"
    return f"cache {cache_dir}"


def model_problems(settings) -> list[str]:
    """What is wrong with the chosen model, LoRAs and ControlNet, as far as the last scan knows (no disk access)."""
    from ..dependencies.model_scan import FAMILY_LABELS, KIND_LABELS, SCAN, fits_family

    problems = []
    model = SCAN.find(settings.model)
    if model is not None:
        if model.problem:
            problems.append(f"{model.name} is unreadable: {model.problem}")
        elif model.refused:
            problems.append(f"{model.name} is refused: {model.refused}")
        elif model.kind != "CHECKPOINT":
            problems.append(f"{model.name} is a {KIND_LABELS[model.kind]}, not a model")
    family = model.family if model is not None else None
    picks = []
    if getattr(settings, "control_model", ""):
        picks.append(("ControlNet", "CONTROLNET", settings.control_model))
    for item in getattr(settings, "loras", ()):  # the LoRA list, where this version has one
        if item.source and getattr(item, "enabled", True):
            picks.append(("LoRA", "LORA", item.source))
    for role, kind, path in picks:
        entry = SCAN.find(path)
        if entry is None:
            continue
        if entry.problem:
            problems.append(f"{role} {entry.name} is unreadable: {entry.problem}")
        elif entry.kind != kind:
            problems.append(f"{role} {entry.name} is a {KIND_LABELS[entry.kind]}, not a {role}")
        elif fits_family(entry, family) is False:
            problems.append(f"{role} {entry.name} is for {FAMILY_LABELS[entry.family]}; the model is "
                            f"{FAMILY_LABELS[family]}")
    return problems


def draw_model_checks(layout, settings) -> None:
    from ..dependencies.model_scan import SCAN

    model = SCAN.find(settings.model)
    if model is not None and model.usable:
        layout.label(text=f"{model.family_label} · {model.layout} · {model.origin}", icon="FILE_3D")
    for problem in model_problems(settings):
        layout.label(text=problem, icon="ERROR")


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


def draw_upscale(layout, settings) -> None:
    """x2 / x4 of the last result (checked against memory before clicking), and Upscale After Generate."""
    from ..engine.upscale import size_check_message

    col = layout.column()
    col.prop(settings, "upscale_method", text="Method")
    x4 = settings.upscale_method == "X4_UPSCALER"
    if x4:
        col.prop(settings, "upscale_x4_model", text="Model", placeholder="stabilityai/stable-diffusion-x4-upscaler")
        col.prop(settings, "upscale_noise_level")
    else:
        col.prop(settings, "upscale_strength", slider=True)
        col.prop(settings, "upscale_control_model", text="Tile ControlNet", placeholder="Default for the model")
    image = settings.result_image
    row = layout.row(align=True)
    row.enabled = image is not None
    for factor in (2, 4):
        button = row.operator("latent_textures.upscale", text=f"Upscale x{factor}", icon="FULLSCREEN_ENTER")
        button.factor = factor
        button.strength = settings.upscale_strength
        button.method = settings.upscale_method
        button.upscaler_model = settings.upscale_x4_model
        button.noise_level = settings.upscale_noise_level
    if image is not None:
        width, height = image.size
        for factor in (2, 4):
            problem = size_check_message(height, width, factor, x4_upscaler=x4) if width and height else None
            if problem:
                layout.label(text=f"x{factor} too large for this machine", icon="ERROR")
                break
    layout.prop(settings, "upscale_after")


def draw_control(layout, settings) -> None:
    """Geometry conditioning: what the scene camera sees steers the image."""
    from ..engine.control import default_control_model

    layout.use_property_split = True
    layout.use_property_decorate = False
    layout.prop(settings, "control")
    if settings.control == "NONE":
        return
    layout.prop(settings, "control_model", text="Model")
    layout.prop(settings, "control_strength", slider=True)
    if not settings.control_model.strip():
        col = layout.column(align=True)
        for family, label in (("SD1", "SD 1.x"), ("SDXL", "SDXL")):
            default = default_control_model(family, settings.control)
            if default is not None:
                col.label(text=f"{label}: {default}", icon="INFO")
            elif family == "SDXL":
                col.label(text="SDXL: no default normal ControlNet: set a Control Model or use Depth", icon="ERROR")
    if settings.id_data.camera is None:
        layout.label(text="Needs the scene camera: add one", icon="ERROR")


def draw_loras(layout, settings) -> None:
    row = layout.row()
    row.template_list("LATENT_TEXTURES_UL_loras", "", settings, "loras", settings, "lora_index", rows=2)
    col = row.column(align=True)
    col.operator("latent_textures.lora_add", text="", icon="ADD")
    col.operator("latent_textures.lora_remove", text="", icon="REMOVE")
    if len(settings.loras) == 0:
        layout.label(text="Add a .safetensors file, or type a repo id into a row", icon="INFO")
def draw_prompt_tokens(layout, settings) -> None:
    """Token counts against the text encoder's window (cached per model and prompt: cheap to draw)."""
    import bpy

    from ..bridge.prompt_tokens import token_lines

    col = layout.column(align=True)
    col.scale_y = 0.8
    for text, icon in token_lines(bpy.context, settings):
        col.label(text=text, icon=icon)


def draw_insight(layout, settings) -> None:
    """Filmstrip / attention-map recording and the comparison grid (docs/insight.md)."""
    from ..engine.compare import ROW_EXPLANATION

    col = layout.column(heading="Record", align=True)
    col.prop(settings, "record_filmstrip")
    col.prop(settings, "record_attention")
    box = layout.box()
    box.label(text="Comparison Grid", icon="IMGDISPLAY")
    box.prop(settings, "compare_guidance")
    box.prop(settings, "compare_axis", expand=True)
    if settings.compare_axis == "SCHEDULER":
        box.column(align=True).prop(settings, "compare_schedulers")
    else:
        box.prop(settings, "compare_steps")
    explanation = box.column(align=True)
    explanation.scale_y = 0.8
    for line in _wrap(ROW_EXPLANATION, 48):
        explanation.label(text=line)
    box.operator("latent_textures.compare", icon="IMGDISPLAY")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)
