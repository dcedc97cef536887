"""``generate``, planning: the scene, the objects, the model and the settings, all checked before anything runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy

from . import arguments, conditioning, material_maps, reference, whole_object
from .errors import CommandError, UsageError, operator_message
from .images import image_argument
from .models import online, preferences


@dataclass
class Plan:
    """What ``generate`` will run: one job per texture, and the img2img starting image's name for the outputs."""

    jobs: list[Job]
    source: str | None


@dataclass
class Job:
    prompt: str
    objects: list[str] = field(default_factory=list)

    def label(self) -> str:
        text = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        where = f" -> {', '.join(self.objects)}" if self.objects else ""
        return f"'{text}'{where}"


def _prompts(args, settings, file_prompts: list[str] | None) -> list[str]:
    if file_prompts is not None:
        return file_prompts
    prompt = args.prompt if args.prompt is not None else settings.prompt
    if not prompt.strip():
        raise UsageError("no prompt: pass --prompt TEXT or --prompts-file FILE")
    return [prompt.strip()]


def open_scene(blend: str | None) -> None:
    """Open ``--blend``; without it, Blender's factory startup scene (a cube with UVs, a camera, a light)."""
    if blend:
        _open_blend(blend)
        return
    bpy.ops.wm.read_homefile(use_factory_startup=True)


def plan_generation(args, context, cache_dir: str, file_prompts: list[str] | None) -> Plan:
    """Check the prompts, model, settings and objects against the open scene; the settings are applied."""
    settings = context.scene.latent_textures
    prompts = _prompts(args, settings, file_prompts)
    model = checked_model(args, settings, cache_dir)
    apply_settings(args, settings, model)
    _check_img2img(args, settings)
    conditioning.apply(args, context, preferences().allow_pickle)
    whole_object.apply(args, context)
    material_maps.apply(args, settings)
    reference.apply(args, context)
    objects = _target_objects(args, context, settings.target)
    if settings.target == "MATERIAL":
        jobs = [Job(prompt, [name]) for prompt in prompts for name in objects]
    else:
        jobs = [Job(prompt, objects) for prompt in prompts]
    if len(jobs) > 1:
        settings.keep_history = True  # every texture of the batch is written out: none may replace another
    return Plan(jobs, _img2img_source(context))


def _open_blend(path: str) -> None:
    blend = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(blend):
        raise CommandError(f"--blend file not found: {blend}")
    try:
        bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    except RuntimeError as error:
        raise CommandError(f"could not open {blend}: {operator_message(error)}") from None
    if not hasattr(bpy.context.scene, "latent_textures"):
        raise CommandError("the add-on's scene settings are missing after loading the file (is it enabled?)")


def _meshes_hint(scene) -> str:
    names = sorted(o.name for o in scene.objects if o.type == "MESH")
    if not names:
        return "the scene has no mesh objects"
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return f"meshes in the scene: {shown}"


def _target_objects(args, context, target: str) -> list[str]:
    scene = context.scene
    if args.objects:
        names = [name.strip() for group in args.objects for name in group.split(",") if name.strip()]
        if not names:
            raise UsageError("--objects is empty")
        if target == "IMAGE":
            raise UsageError("--objects needs --target MATERIAL, PROJECT or OBJECT (--target IMAGE only makes images)")
        for name in names:
            obj = scene.objects.get(name)
            if obj is None:
                raise CommandError(f"unknown object '{name}' ({_meshes_hint(scene)})")
            if obj.type != "MESH":
                raise CommandError(f"object '{name}' is a {obj.type.lower()}, not a mesh ({_meshes_hint(scene)})")
        return list(dict.fromkeys(names))
    if target == "MATERIAL":
        active = context.view_layer.objects.active
        if active is not None and active.type == "MESH":
            return [active.name]
        selected = [o.name for o in scene.objects if o.type == "MESH" and o.select_get()]
        meshes = [o.name for o in scene.objects if o.type == "MESH"]
        for candidates in (selected, meshes):
            if len(candidates) == 1:
                return candidates
        raise CommandError(f"no active mesh to texture: pass --objects NAME ({_meshes_hint(scene)})")
    if target in ("PROJECT", "OBJECT"):
        selected = [o.name for o in scene.objects if o.type == "MESH" and o.select_get()]
        if not selected:
            raise CommandError(f"no selected mesh to texture: pass --objects NAME[,NAME] ({_meshes_hint(scene)})")
        return selected
    return []


def checked_model(args, settings, cache_dir: str) -> str:
    """The model setting to use, checked the way the engine will check it, without loading anything.

    A file or folder must exist and be a model; a repo id must be cached when downloads are off.
    """
    from ..engine import EngineError, hub, sources

    model = (args.model if args.model is not None else settings.model).strip()
    if not model:
        raise UsageError("no model: pass --model (a repo id, a diffusers folder or a .safetensors file)")
    if not model.startswith("//") and not os.path.isabs(model) and os.path.exists(os.path.expanduser(model)):
        model = os.path.abspath(os.path.expanduser(model))  # relative to where the command runs
    try:
        source = sources.classify(bpy.path.abspath(model) if model.startswith("//") else model,
                                  allow_pickle=preferences().allow_pickle)
        caches = [folder for folder, _label in preferences().hub_caches()]
        if source.kind == "HUB" and not online() and all(
            hub.cached_snapshot(source.location, folder) is None for folder in caches
        ):
            raise CommandError(
                f"model '{model}' is not in the model caches ({', '.join(caches)}) and downloads are off (offline "
                "mode): download it once online, point --model-cache at a cache that has it, or pass a local folder"
            )
    except EngineError as error:
        raise CommandError(f"--model: {error}") from None
    return model


def apply_settings(args, settings, model: str) -> None:
    """Write the options into ``scene.latent_textures``; what is not given keeps the scene's value."""
    settings.model = model
    for option, name in (("negative_prompt", "negative_prompt"), ("mode", "mode"), ("source", "source"),
                         ("strength", "strength"), ("width", "width"), ("height", "height"), ("steps", "steps"),
                         ("guidance", "guidance_scale"), ("scheduler", "scheduler"), ("seamless", "seamless"),
                         ("target", "target")):
        value = getattr(args, option)
        if value is not None:
            setattr(settings, name, value)
    # Repeatable by default: the scene's seed, unless the command asks for a random one.
    settings.use_random_seed = args.seed == arguments.RANDOM_SEED
    if args.seed not in (None, arguments.RANDOM_SEED):
        settings.seed = args.seed


def _check_img2img(args, settings) -> None:
    starts_from_an_image = settings.mode in ("IMG2IMG", "INPAINT")
    if args.source_image is not None:
        if not starts_from_an_image:
            raise UsageError("--source-image needs --mode IMG2IMG or INPAINT")
        if args.source is not None and args.source != "IMAGE":
            raise UsageError("--source-image needs --source IMAGE")
        settings.source = "IMAGE"
        settings.source_image = image_argument("--source-image", args.source_image)
    if starts_from_an_image and settings.source == "IMAGE" and settings.source_image is None:
        raise UsageError("--source IMAGE needs --source-image NAME|FILE")
    if starts_from_an_image and settings.source in {"CAMERA", "VIEWPORT"} and bpy.context.scene.camera is None:
        raise CommandError(f"{settings.mode} from a camera render needs a scene camera: add one or use --source IMAGE")


def _img2img_source(context) -> str | None:
    """What an image-to-image run starts from, for the output names (the recipe does not say)."""
    settings = context.scene.latent_textures
    if settings.mode not in ("IMG2IMG", "INPAINT"):
        return None
    if settings.source == "IMAGE":
        image = settings.source_image
        return f"IMAGE:{bpy.path.abspath(image.filepath) if image.filepath else image.name}"
    blend = bpy.data.filepath or "(new scene)"
    return f"{settings.source}:{blend}:{context.scene.camera.name}"
