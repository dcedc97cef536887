"""The ``latent_textures`` command: texture assets headless, through the same operator the panel runs.

In Blender::

    blender --command latent_textures generate --blend in.blend --prompt "rusty metal" --out out.blend
    blender --command latent_textures models

In this repository's bpy-module environment (no Blender binary) the launcher
``tools/latent_textures.py`` loads the extension and calls :func:`main` with
the same arguments.

``generate`` checks every argument, the objects and the model before anything
runs, then sets ``scene.latent_textures`` and calls
``bpy.ops.latent_textures.generate()`` once per texture; outputs are written
only when every texture succeeded. Registration imports nothing heavy: only
the standard library, bpy and the add-on's settings.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import cli_support as support
from . import properties

COMMAND_ID = "latent_textures"  # `latent-textures` is refused: ids must pass str.isidentifier()
DEFAULT_PROG = f"blender --command {COMMAND_ID}"
DEBUG_ENV = "LATENT_TEXTURES_DEBUG"
DEMO_OBJECT_NAME = "Latent Textures Demo Cube"

_handle = None


def register() -> None:
    global _handle
    _handle = bpy.utils.register_cli_command(COMMAND_ID, main)


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None


# -- errors and the parser ------------------------------------------------------


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


class UsageError(CommandError):
    """Bad arguments: exit status 2, like argparse."""


class _ParserExit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse that returns instead of calling sys.exit (Blender's --command expects a return code)."""

    def error(self, message: str) -> None:
        raise UsageError(f"{message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> None:
        if message:
            sys.stderr.write(message)
        raise _ParserExit(status)


def _settings_rna(name: str):
    return properties.LatentTexturesSettings.bl_rna.properties[name]


def _choices(items) -> list[str]:
    return [identifier for identifier, _label, _description in items]


def _choice_help(items) -> str:
    return "; ".join(f"{identifier}: {description}" for identifier, _label, description in items)


def _upper(value: str) -> str:
    return value.strip().upper().replace("-", "_")


RANDOM_SEED = "random"


def _seed(value: str) -> int | str:
    if value.strip().lower() == RANDOM_SEED:
        return RANDOM_SEED
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {value!r}") from None


def _scene_default(name: str) -> str:
    prop = _settings_rna(name)
    default = prop.default
    if prop.type == "FLOAT":
        default = round(default, 3)
    return f"the scene's setting; {default} in a new scene"


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Latent Textures from the command line: generate textures headless with the same "
                    "operator the panel runs, and list the models available locally.",
        epilog=f"Run '{prog} COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    generate = commands.add_parser(
        "generate",
        help="generate textures onto objects (one per prompt; a prompts file makes a batch)",
        description=textwrap.fill(
            "Generate textures with bpy.ops.latent_textures.generate, the operator the panel runs. "
            "Options you leave out keep the value saved in the scene (the add-on's defaults in a new scene). "
            "Everything is checked before the first texture is generated, and files are written only when "
            "every texture succeeded: on failure the exit status is non-zero, one line says why, and no "
            "output file is written. Texture files are named from their recipe (<prompt>_<seed>_<digest>.png), "
            "so the same command writes the same files again.", width=100,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            f"  {prog} generate --blend crate.blend --objects Crate --prompt \"weathered oak planks\" \\\n"
            "      --seed 7 --out crate_textured.blend --texture-dir textures/\n"
            f"  {prog} generate --blend props.blend --objects Barrel --prompts-file prompts.txt \\\n"
            "      --model ~/models/sd15 --steps 20 --texture-dir textures/\n"
            f"  {prog} generate --prompt \"red brick wall\" --seamless BOTH --out demo.blend  "
            "(no --blend: a demo scene)\n"
            "\nexit status: 0 success, 1 failure (bad input, missing model, failed generation), "
            "2 bad arguments."
        ),
    )
    scene = generate.add_argument_group("scene")
    scene.add_argument("--blend", metavar="IN.blend",
                       help="the .blend file to texture (default: a demo scene: a cube with a UV map, a camera "
                            "and a light)")
    scene.add_argument("--objects", metavar="NAME[,NAME]", action="append",
                       help="mesh objects to texture, comma-separated or repeated. With --target MATERIAL each "
                            "object gets its own texture (one generation per object and prompt); with PROJECT "
                            "one texture per prompt is projected onto all of them from the scene camera. "
                            "Default: the active mesh (MATERIAL) or the selected meshes (PROJECT)")

    what = generate.add_argument_group("prompts")
    what.add_argument("--prompt", help="what to paint (default: the scene's prompt)")
    what.add_argument("--negative-prompt", metavar="TEXT", help="what to steer away from, for every prompt "
                      "(default: the scene's negative prompt)")
    what.add_argument("--prompts-file", metavar="FILE",
                      help="a UTF-8 text file with one prompt per line: one texture per line (blank lines and "
                           "lines starting with # are skipped). Replaces --prompt")

    model = generate.add_argument_group("model")
    model.add_argument("--model", metavar="MODEL",
                       help="a Hugging Face repo id (org/name), a local diffusers folder (with model_index.json) "
                            f"or a single-file .safetensors checkpoint (default: {_scene_default('model')})")
    model.add_argument("--model-cache", metavar="DIR",
                       help="the model cache folder for this run (Hugging Face cache layout, e.g. a shared or "
                            "pre-downloaded one on a render farm; default: the add-on preferences' Model Cache)")

    sampling = generate.add_argument_group("sampling")
    sampling.add_argument("--mode", type=_upper, choices=_choices(properties.MODE_ITEMS), metavar="MODE",
                          help=f"{_choice_help(properties.MODE_ITEMS)} (default: {_scene_default('mode')})")
    sampling.add_argument("--source", type=_upper, choices=_choices(properties.SOURCE_ITEMS), metavar="SOURCE",
                          help=f"the image IMG2IMG starts from. {_choice_help(properties.SOURCE_ITEMS)} "
                               f"(default: {_scene_default('source')})")
    sampling.add_argument("--source-image", metavar="NAME|FILE",
                          help="for --source IMAGE: an Image datablock in the .blend, or an image file to load")
    sampling.add_argument("--strength", type=float, metavar="F",
                          help=f"IMG2IMG: how much of the source is repainted, above 0 up to 1 "
                               f"(default: {_scene_default('strength')})")
    sampling.add_argument("--width", type=int, metavar="PX",
                          help=f"image width, a multiple of 8 from 64 to 4096 (default: {_scene_default('width')})")
    sampling.add_argument("--height", type=int, metavar="PX",
                          help=f"image height, a multiple of 8 from 64 to 4096 (default: {_scene_default('height')})")
    sampling.add_argument("--steps", type=int, metavar="N",
                          help=f"denoising steps (default: {_scene_default('steps')})")
    sampling.add_argument("--guidance", type=float, metavar="F",
                          help="how strongly the prompt is followed, 0 to 30; 1 or less turns guidance off "
                               f"(default: {_scene_default('guidance_scale')})")
    sampling.add_argument("--scheduler", type=_upper, choices=_choices(properties.SCHEDULER_ITEMS), metavar="NAME",
                          help=f"{_choice_help(properties.SCHEDULER_ITEMS)} (default: {_scene_default('scheduler')})")
    sampling.add_argument("--seed", type=_seed, metavar="N|random",
                          help="noise seed, 0 to 2147483647, the same for every texture of the run; 'random' picks "
                               "a new one per texture (default: the seed saved in the scene, 0 in a new scene: "
                               "runs are repeatable unless you ask for random)")
    sampling.add_argument("--seamless", type=_upper, choices=_choices(properties.SEAMLESS_ITEMS), metavar="AXES",
                          help=f"tileable output: {_choice_help(properties.SEAMLESS_ITEMS)} "
                               f"(default: {_scene_default('seamless')})")
    sampling.add_argument("--target", type=_upper, choices=_choices(properties.TARGET_ITEMS), metavar="TARGET",
                          help=f"where each texture goes. {_choice_help(properties.TARGET_ITEMS)} "
                               f"(default: {_scene_default('target')})")

    output = generate.add_argument_group("output (at least one)")
    output.add_argument("--out", metavar="OUT.blend",
                        help="save the textured scene here (textures packed inside; may be the --blend file "
                             "itself); written only if every texture succeeded")
    output.add_argument("--texture-dir", metavar="DIR",
                        help="also write each texture as DIR/<prompt>_<seed>_<digest>.png, with its recipe in "
                             "the PNG text metadata ('latent_textures': JSON; 'parameters': readable summary)")
    generate.set_defaults(run=_run_generate)

    models = commands.add_parser(
        "models",
        help="list the models available locally (the model cache) and whether the default model is there",
        description="List the diffusion models in the model cache (Hugging Face cache layout) and single-file "
                    ".safetensors checkpoints placed in it. A repo id listed here runs offline.",
    )
    models.add_argument("--model-cache", metavar="DIR",
                        help="the cache folder to list (default: the add-on preferences' Model Cache)")
    models.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    models.set_defaults(run=_run_models)
    return parser


# -- entry point -------------------------------------------------------------------


def main(argv: list[str], *, prog: str = DEFAULT_PROG) -> int:
    """Run a command line (the arguments after the command id); returns the exit status."""
    try:
        parser = build_parser(prog)
        args = parser.parse_args(list(argv))
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return args.run(args)
    except _ParserExit as done:
        return done.status
    except UsageError as error:
        _error(error)
        return 2
    except CommandError as error:
        _error(error)
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as error:  # a bug: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        _error(f"unexpected {type(error).__name__}: {error} (set {DEBUG_ENV}=1 for the traceback)")
        return 1


def _error(message) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    sys.stdout.flush()
    sys.stderr.write(f"{COMMAND_ID}: error: {text}\n")
    sys.stderr.flush()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- models ------------------------------------------------------------------------------


def _preferences():
    from .preferences import get_preferences

    return get_preferences(bpy.context)


@contextlib.contextmanager
def _model_cache(path: str | None):
    """The add-on preferences' model cache, switched to ``path`` for the duration of the command."""
    prefs = _preferences()
    if path is None:
        yield prefs.resolved_model_cache_dir()
        return
    folder = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"--model-cache is not a folder: {folder}")
    saved = prefs.model_cache_dir
    prefs.model_cache_dir = folder
    try:
        yield prefs.resolved_model_cache_dir()
    finally:
        prefs.model_cache_dir = saved


def _local_models(cache_dir: str) -> list[dict]:
    from .engine import list_local_models

    return list_local_models(cache_dir)


def _online() -> bool:
    """Downloads allowed: Blender's online access is on and ``HF_HUB_OFFLINE`` is not set."""
    from .engine import sources

    return not sources.hub_offline(not getattr(bpy.app, "online_access", True))


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _run_models(args) -> int:
    with _model_cache(args.model_cache) as cache_dir:
        found = _local_models(cache_dir)
    default = properties.DEFAULT_MODEL
    default_cached = any(m["repo_id"] == default and m["is_pipeline"] for m in found)
    hub_cache = _hub_cache_dir()
    elsewhere = []
    if os.path.normpath(hub_cache) != os.path.normpath(cache_dir):
        elsewhere = _local_models(hub_cache)
    if args.json:
        _say(json.dumps({
            "cache_dir": cache_dir,
            "online_access": _online(),
            "models": found,
            "default_model": {"repo_id": default, "cached": default_cached},
            "huggingface_cache": {"cache_dir": hub_cache, "models": elsewhere},
        }, indent=2))
        return 0
    _say(f"Model cache: {cache_dir}")
    if found:
        width = max(len(m["repo_id"]) for m in found)
        for m in found:
            kind = "pipeline" if m["is_pipeline"] else "files"
            _say(f"  {m['repo_id']:<{width}}  {kind:<8}  {support.format_bytes(m['size_bytes']):>9}  {m['path']}")
    else:
        _say("  (no models yet)")
    if default_cached:
        _say(f"Default model {default}: cached")
    elif _online():
        _say(f"Default model {default}: not cached; downloaded on first use (about 4 GB)")
    else:
        _say(f"Default model {default}: not cached, and downloads are off (offline mode): "
             "download it into the cache first, or pass --model with a local folder or .safetensors file")
    if elsewhere:
        _say(f"Also in the Hugging Face cache {hub_cache} (use them with --model-cache {hub_cache}):")
        for m in elsewhere:
            _say(f"  {m['repo_id']}")
    _say("Any local diffusers folder (with model_index.json) or .safetensors checkpoint works too: --model PATH")
    return 0


# -- generate: planning -------------------------------------------------------------------------


@dataclass
class _Job:
    prompt: str
    objects: list[str] = field(default_factory=list)

    def label(self) -> str:
        text = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        where = f" -> {', '.join(self.objects)}" if self.objects else ""
        return f"'{text}'{where}"


def _output_paths(args) -> tuple[Path | None, Path | None]:
    if not args.out and not args.texture_dir:
        raise UsageError("nothing would be saved: give --out OUT.blend and/or --texture-dir DIR")
    out = texture_dir = None
    if args.out:
        out = Path(os.path.abspath(os.path.expanduser(args.out)))
        if out.suffix.lower() != ".blend":
            raise UsageError(f"--out must be a .blend file path, got {args.out}")
        if out.is_dir():
            raise UsageError(f"--out is a folder, not a .blend file: {out}")
    if args.texture_dir:
        texture_dir = Path(os.path.abspath(os.path.expanduser(args.texture_dir)))
        if texture_dir.exists() and not texture_dir.is_dir():
            raise UsageError(f"--texture-dir is a file, not a folder: {texture_dir}")
    for option, folder in (("--out", out.parent if out else None), ("--texture-dir", texture_dir)):
        if folder is not None:
            _check_writable(option, folder)
    return out, texture_dir


def _check_writable(option: str, folder: Path) -> None:
    """The folder, or the nearest part of it that exists, is a folder we may write in."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{option}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"{option}: no permission to write in {existing}")


def _file_prompts(args) -> list[str] | None:
    """The prompts file's lines, read before anything else happens."""
    if args.prompts_file is None:
        return None
    if args.prompt is not None:
        raise UsageError("give --prompt or --prompts-file, not both")
    try:
        return support.read_prompts_file(os.path.abspath(os.path.expanduser(args.prompts_file)))
    except ValueError as error:
        raise CommandError(str(error)) from None


def _prompts(args, settings, file_prompts: list[str] | None) -> list[str]:
    if file_prompts is not None:
        return file_prompts
    prompt = args.prompt if args.prompt is not None else settings.prompt
    if not prompt.strip():
        raise UsageError("no prompt: pass --prompt TEXT or --prompts-file FILE")
    return [prompt.strip()]


def _check_number(option: str, name: str, value, *, multiple_of: int | None = None):
    """``value`` within the setting's hard range (Blender would clamp silently; we refuse)."""
    if value is None:
        return None
    prop = _settings_rna(name)
    low, high = prop.hard_min, prop.hard_max
    if name == "strength":
        ok = 0 < value <= high
        allowed = f"above 0, at most {high:g}"
    else:
        ok = low <= value <= high
        allowed = f"from {low:g} to {high:g}"
    if multiple_of and value % multiple_of:
        ok = False
    if not ok or value != value:  # NaN
        extra = f"a multiple of {multiple_of} " if multiple_of else ""
        raise UsageError(f"{option} must be {extra}{allowed}; got {value:g}")
    return value


def _check_numbers(args) -> None:
    for option, name in (("--width", "width"), ("--height", "height")):
        _check_number(option, name, getattr(args, name), multiple_of=8)
    _check_number("--steps", "steps", args.steps)
    _check_number("--guidance", "guidance_scale", args.guidance)
    _check_number("--strength", "strength", args.strength)
    if args.seed not in (None, RANDOM_SEED):
        _check_number("--seed", "seed", args.seed)


def _open_blend(path: str) -> None:
    blend = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(blend):
        raise CommandError(f"--blend file not found: {blend}")
    try:
        bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    except RuntimeError as error:
        raise CommandError(f"could not open {blend}: {_operator_message(error)}") from None
    if not hasattr(bpy.context.scene, "latent_textures"):
        raise CommandError("the add-on's scene settings are missing after loading the file (is it enabled?)")


def build_demo_scene() -> bpy.types.Object:
    """An empty file with a cube (one full UV square per face), a ground plane, a camera and a sun.

    Renders with Cycles on the CPU (16 samples, denoised), so ``bpy.ops.render.render``
    gives a quick look at the textured cube.
    """
    import bmesh
    from mathutils import Euler, Vector

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene

    mesh = bpy.data.meshes.new(DEMO_OBJECT_NAME)
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=2.0)
    uv_layer = bm.loops.layers.uv.new("UVMap")
    corners = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    for face in bm.faces:
        for loop, uv in zip(face.loops, corners):
            loop[uv_layer].uv = uv
    bm.to_mesh(mesh)
    bm.free()
    cube = bpy.data.objects.new(DEMO_OBJECT_NAME, mesh)
    cube.location = (0.0, 0.0, 1.0)
    cube.rotation_euler = Euler((0.0, 0.0, 0.6))
    scene.collection.objects.link(cube)

    ground_mesh = bpy.data.meshes.new("Ground")
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=8.0)
    bm.to_mesh(ground_mesh)
    bm.free()
    ground = bpy.data.objects.new("Ground", ground_mesh)
    ground_material = bpy.data.materials.new("Ground")
    if bpy.app.version < (5, 0, 0):
        ground_material.use_nodes = True
    bsdf = next(n for n in ground_material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Base Color"].default_value = (0.5, 0.5, 0.5, 1.0)
    ground_mesh.materials.append(ground_material)
    scene.collection.objects.link(ground)

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = (4.4, -4.8, 3.5)
    direction = Vector((0.0, 0.0, 0.8)) - camera.location
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(camera)
    scene.camera = camera

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", type="SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = Euler((0.7, 0.2, 0.9))
    scene.collection.objects.link(sun)
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    if bpy.app.version < (5, 0, 0):
        world.use_nodes = True
    background = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None) if world.node_tree else None
    if background is not None:
        background.inputs["Color"].default_value = (0.35, 0.4, 0.5, 1.0)
        background.inputs["Strength"].default_value = 0.6

    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = render.resolution_y = 512
    render.resolution_percentage = 100
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = True
    scene.view_settings.view_transform = "Standard"

    for obj in scene.objects:
        obj.select_set(obj is cube)
    bpy.context.view_layer.objects.active = cube
    return cube


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
            raise UsageError("--objects needs --target MATERIAL or PROJECT (--target IMAGE only makes images)")
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
    if target == "PROJECT":
        selected = [o.name for o in scene.objects if o.type == "MESH" and o.select_get()]
        if not selected:
            raise CommandError(f"no selected mesh to project onto: pass --objects NAME[,NAME] ({_meshes_hint(scene)})")
        return selected
    return []


def _model(args, settings, cache_dir: str) -> str:
    """The model setting to use, checked the way the engine will check it, without loading anything.

    A file or folder must exist and be a model; a repo id must be cached when downloads are off.
    """
    from .engine import EngineError, sources

    model = (args.model if args.model is not None else settings.model).strip()
    if not model:
        raise UsageError("no model: pass --model (a repo id, a diffusers folder or a .safetensors file)")
    if not model.startswith("//") and not os.path.isabs(model) and os.path.exists(os.path.expanduser(model)):
        model = os.path.abspath(os.path.expanduser(model))  # relative to where the command runs
    try:
        source = sources.classify(bpy.path.abspath(model) if model.startswith("//") else model,
                                  allow_pickle=_preferences().allow_pickle)
        if source.kind == "HUB" and not _online() and sources.cached_snapshot(source.location, cache_dir) is None:
            raise CommandError(
                f"model '{model}' is not in the model cache ({cache_dir}) and downloads are off (offline mode): "
                "download it once online, point --model-cache at a cache that has it, or pass a local folder"
            )
    except EngineError as error:
        raise CommandError(f"--model: {error}") from None
    return model


def _source_image(args):
    image = bpy.data.images.get(args.source_image)
    if image is not None:
        return image
    path = os.path.abspath(os.path.expanduser(args.source_image))
    if not os.path.isfile(path):
        raise CommandError(f"--source-image is neither an image in the file nor an image file: {args.source_image}")
    try:
        return bpy.data.images.load(path, check_existing=True)
    except RuntimeError as error:
        raise CommandError(f"could not load --source-image {path}: {_operator_message(error)}") from None


def _apply_settings(args, settings, model: str) -> None:
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
    settings.use_random_seed = args.seed == RANDOM_SEED
    if args.seed not in (None, RANDOM_SEED):
        settings.seed = args.seed


def _check_img2img(args, settings) -> None:
    if args.source_image is not None:
        if settings.mode != "IMG2IMG":
            raise UsageError("--source-image needs --mode IMG2IMG")
        if args.source is not None and args.source != "IMAGE":
            raise UsageError("--source-image needs --source IMAGE")
        settings.source = "IMAGE"
        settings.source_image = _source_image(args)
    if settings.mode == "IMG2IMG" and settings.source == "IMAGE" and settings.source_image is None:
        raise UsageError("--source IMAGE needs --source-image NAME|FILE")
    if settings.mode == "IMG2IMG" and settings.source in {"CAMERA", "VIEWPORT"} and bpy.context.scene.camera is None:
        raise CommandError("IMG2IMG from a camera render needs a scene camera: add one or use --source IMAGE")


def _img2img_source(context) -> str | None:
    """What an image-to-image run starts from, for the output names (the recipe does not say)."""
    settings = context.scene.latent_textures
    if settings.mode != "IMG2IMG":
        return None
    if settings.source == "IMAGE":
        image = settings.source_image
        return f"IMAGE:{bpy.path.abspath(image.filepath) if image.filepath else image.name}"
    blend = bpy.data.filepath or "(demo scene)"
    return f"{settings.source}:{blend}:{context.scene.camera.name}"


# -- generate: running -----------------------------------------------------------------------------


def _operator_message(error: BaseException) -> str:
    """``RuntimeError('Error: message\\n')`` from bpy.ops -> ``message``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines)
    for prefix in ("Error: ", "Warning: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text


@contextlib.contextmanager
def _watching(progress: support.Progress):
    """Show each denoising step of the generations run meanwhile (the operator runs them in this thread)."""
    from .bridge.job import progress_listener

    def on_progress(event) -> None:
        progress.step(getattr(event, "stage", "DENOISE"), event.step, event.total)

    with progress_listener(on_progress):
        yield


def _select(context, names: list[str]) -> None:
    if not names:
        return
    wanted = set(names)
    for obj in context.scene.objects:
        obj.select_set(obj.name in wanted)
    context.view_layer.objects.active = context.scene.objects[names[0]]


def _generate_one(context, job: _Job, index: int, total: int, progress: support.Progress):
    settings = context.scene.latent_textures
    settings.prompt = job.prompt
    _select(context, job.objects)
    progress.start_image(index, job.label())
    captured = io.StringIO()  # the operator's reports (printed on stdout): replayed on stderr
    try:
        with _watching(progress), contextlib.redirect_stdout(captured):
            outcome = bpy.ops.latent_textures.generate()
    except RuntimeError as error:
        progress.fail_image()
        _replay(captured.getvalue(), skip=("Error:",))
        where = f"texture {index}/{total} ({job.label()}): " if total > 1 else ""
        raise CommandError(where + _operator_message(error)) from None
    if outcome != {"FINISHED"}:
        progress.fail_image()
        _replay(captured.getvalue(), skip=())
        raise CommandError(f"texture {index}/{total} ({job.label()}) did not finish: {', '.join(sorted(outcome))}")
    _replay(captured.getvalue(), skip=("Info: Generated",))
    image = settings.result_image
    recipe = image["latent_textures"].to_dict() if "latent_textures" in image else {}
    progress.finish_image(f"'{image.name}', seed {recipe.get('seed', settings.seed)}")
    return image, recipe


def _replay(text: str, skip: tuple[str, ...]) -> None:
    for line in text.splitlines():
        if line.strip() and not line.startswith(skip):
            sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _kept_selection(context):
    """Put the selection and the active object back after the batch, so the saved file keeps the artist's."""
    scene = context.scene
    selected = [o.name for o in scene.objects if o.select_get()]
    active = context.view_layer.objects.active
    active_name = active.name if active is not None else None
    try:
        yield
    finally:
        if scene == context.scene:
            for obj in scene.objects:
                obj.select_set(obj.name in selected)
            context.view_layer.objects.active = scene.objects.get(active_name) if active_name else None


# -- generate: writing -----------------------------------------------------------------------------


class _Writer:
    """Writes files through temporary names, and takes back everything it created if anything fails."""

    def __init__(self) -> None:
        self.created: list[Path] = []
        self.created_dirs: list[Path] = []
        self.temporary: list[Path] = []

    def ensure_dir(self, folder: Path) -> None:
        missing = []
        for parent in [folder, *folder.parents]:
            if parent.exists():
                break
            missing.append(parent)
        folder.mkdir(parents=True, exist_ok=True)
        self.created_dirs.extend(missing)  # deepest first

    def temp_path(self, final: Path, suffix: str) -> Path:
        path = final.with_name(f".{final.stem}.tmp{os.getpid()}{suffix}")
        self.temporary.append(path)
        return path

    def commit(self, temp: Path, final: Path) -> None:
        existed = final.exists()
        os.replace(temp, final)
        self.temporary.remove(temp)
        if not existed:
            self.created.append(final)

    def rollback(self) -> None:
        for path in self.temporary + self.created:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in self.created_dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _write_png(writer: _Writer, image, recipe: dict, source: str | None, final: Path) -> None:
    from .bridge import pixels

    temp = writer.temp_path(final, ".png")
    pixels.save_display_png(image, str(temp), view_transform="Standard")
    data = support.png_with_text(temp.read_bytes(), support.recipe_png_text(recipe, source))
    temp.write_bytes(data)
    writer.commit(temp, final)


def _write_outputs(results, source: str | None, out: Path | None, texture_dir: Path | None) -> list[Path]:
    writer = _Writer()
    written = []
    try:
        if texture_dir is not None:
            writer.ensure_dir(texture_dir)
            done = set()
            for image, recipe in results:
                final = texture_dir / f"{support.output_stem(recipe, source)}.png"
                if final not in done:  # the same recipe twice is the same picture
                    done.add(final)
                    _write_png(writer, image, recipe, source, final)
                    written.append(final)
        if out is not None:
            writer.ensure_dir(out.parent)
            temp = writer.temp_path(out, ".blend")
            with contextlib.redirect_stdout(io.StringIO()):  # "Info: Saved copy as <temp name>"
                bpy.ops.wm.save_as_mainfile(filepath=str(temp), check_existing=False, copy=True)
            writer.commit(temp, out)
            written.append(out)
    except Exception as error:
        writer.rollback()
        message = _operator_message(error) if isinstance(error, RuntimeError) else str(error)
        raise CommandError(f"could not write the outputs (nothing was kept): {message}") from None
    return written


def _run_generate(args) -> int:
    started = time.monotonic()
    out, texture_dir = _output_paths(args)
    _check_numbers(args)
    file_prompts = _file_prompts(args)

    if args.blend:
        _open_blend(args.blend)
    else:
        build_demo_scene()
    context = bpy.context
    settings = context.scene.latent_textures
    prompts = _prompts(args, settings, file_prompts)

    with _model_cache(args.model_cache) as cache_dir:
        model = _model(args, settings, cache_dir)
        _apply_settings(args, settings, model)
        _check_img2img(args, settings)
        objects = _target_objects(args, context, settings.target)
        source = _img2img_source(context)
        if settings.target == "MATERIAL":
            jobs = [_Job(prompt, [name]) for prompt in prompts for name in objects]
        else:
            jobs = [_Job(prompt, objects) for prompt in prompts]
        if len(jobs) > 1:
            settings.keep_history = True  # every texture of the batch is written out: none may replace another

        progress = support.Progress(sys.stderr, len(jobs))
        results = []
        with _kept_selection(context):
            for index, job in enumerate(jobs, start=1):
                results.append(_generate_one(context, job, index, len(jobs), progress))
    written = _write_outputs(results, source, out, texture_dir)
    for path in written:
        _say(f"Wrote {path}")
    noun = "texture" if len(results) == 1 else "textures"
    _say(f"Done: {len(results)} {noun} in {support.format_seconds(time.monotonic() - started)}")
    return 0
