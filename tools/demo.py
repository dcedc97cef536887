"""``make demo``: the main job end to end - a scene, a generated texture on an object, a render.

    .venv/bin/python tools/demo.py --out out/demo

Runs the ``latent_textures generate`` command through the launcher (the same
``main(argv)`` that ``blender --command latent_textures`` runs) on its demo
scene - a cube with a UV map, a ground plane, a camera and a sun - then renders
the textured cube with Cycles on the CPU. Writes into the output folder:

* ``demo.blend`` - the scene, texture packed, material wired;
* ``<prompt>_<seed>_<digest>.png`` - the texture, its recipe in the PNG text metadata;
* ``render.png`` - a Cycles render of the textured cube;
* a second texture: the cube textured whole (``--target OBJECT``: five views around it, each
  conditioned on the cube's depth, baked into its own UV map), saved as ``<prompt>_<seed>_<digest>.png``,
  and ``render_whole_object.png``, rendered from the demo camera, which none of the views used.

The model: ``--model`` when given; else the add-on's default model when it is
in the Hugging Face cache or huggingface.co answers (it is downloaded once,
about 4 GB); else - or with ``--tiny`` - a tiny untrained model built on the
spot, whose output is noise, which the demo says plainly.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))  # tools/ is not a package on sys.path when run as a script

import latent_textures as launcher  # noqa: E402  (tools/latent_textures.py, the launcher)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # = properties/model.py's DEFAULT_MODEL (bpy-free copy)
DEPTH_CONTROLNET = "lllyasviel/control_v11f1p_sd15_depth"  # = engine/control.py's SD 1.x DEPTH default
PROMPT = "weathered red brick wall, seamless texture, photorealistic, high detail"
NEGATIVE = "blurry, text, watermark"
REAL = {"size": 512, "steps": 20}
TINY = {"size": 256, "steps": 4}
DEMO_OBJECT_NAME = "Latent Textures Demo Cube"
RENDER_NAME = "render.png"
WHOLE_RENDER_NAME = "render_whole_object.png"
WHOLE_OBJECT_VIEWS = 5  # four around (one facing each side) and one above
BLEND_NAME = "demo.blend"


def cached(repo_id: str, filename: str) -> bool:
    """``filename`` of ``repo_id`` is in the Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, filename), str)


def hub_reachable(repo_id: str, timeout: float = 3.0) -> bool:
    """huggingface.co answers for ``repo_id`` within ``timeout`` seconds (DNS included)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    answer: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(f"{endpoint}/api/models/{repo_id}", method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer.append(200 <= response.status < 400)
        except Exception:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)  # getaddrinfo ignores urlopen's timeout
    return bool(answer and answer[0])


def choose_model(args) -> tuple[str, str | None]:
    """(model, why it is the tiny model or None)."""
    if args.model:
        return args.model, None
    if args.tiny:
        return "", "you asked for it (--tiny)"
    # The whole-object half runs the family's depth ControlNet: a cached model without it cannot run offline.
    missing = [repo for repo, filename in ((DEFAULT_MODEL, "model_index.json"), (DEPTH_CONTROLNET, "config.json"))
               if not cached(repo, filename)]
    if not missing or hub_reachable(DEFAULT_MODEL):
        return DEFAULT_MODEL, None
    return "", f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the Hugging Face cache\n" \
               "and huggingface.co could not be reached"


def build_tiny(folder: Path) -> Path:
    if (folder / "model_index.json").is_file():
        return folder
    from tiny_models import build_tiny_sd

    print(f"Building a tiny untrained model in {folder} ...", flush=True)
    return build_tiny_sd(folder, seed=0)


# The cube's unwrap: each face its own square island, upright as seen from outside (a 3 x 2 layout, a margin
# around each). Keyed by the face's outward normal: (column, row) of its cell.
FACE_CELLS = {(1, 0, 0): (0, 0), (0, 1, 0): (1, 0), (-1, 0, 0): (2, 0),
              (0, -1, 0): (0, 1), (0, 0, 1): (1, 1), (0, 0, -1): (2, 1)}
CELL = 1.0 / 3.0
CELL_MARGIN = 0.02


def face_uv(normal: tuple[int, int, int], corner: tuple[float, float, float]) -> tuple[float, float]:
    """The UV of a corner (cube of size 2 at its origin) of the face with outward ``normal``: the face's cell,
    its up the world's +Z (top and bottom: +Y and -Y), its right as seen from outside."""
    up = (0, 1, 0) if normal[2] == 1 else (0, -1, 0) if normal[2] == -1 else (0, 0, 1)
    right = (up[1] * normal[2] - up[2] * normal[1], up[2] * normal[0] - up[0] * normal[2],
             up[0] * normal[1] - up[1] * normal[0])
    u = (sum(a * b for a, b in zip(corner, right)) + 1.0) / 2.0
    v = (sum(a * b for a, b in zip(corner, up)) + 1.0) / 2.0
    column, row = FACE_CELLS[normal]
    inner = CELL - 2 * CELL_MARGIN
    return column * CELL + CELL_MARGIN + u * inner, row * CELL + CELL_MARGIN + v * inner


def build_demo_scene():
    """An empty file with a cube (unwrapped: six islands, ``face_uv``), a ground plane, a camera and a sun.

    Renders with Cycles on the CPU (16 samples, denoised), so ``bpy.ops.render.render``
    gives a quick look at the textured cube.
    """
    import bmesh
    import bpy
    from mathutils import Euler, Vector

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene

    mesh = bpy.data.meshes.new(DEMO_OBJECT_NAME)
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=2.0)
    uv_layer = bm.loops.layers.uv.new("UVMap")
    for face in bm.faces:
        for loop in face.loops:
            loop[uv_layer].uv = face_uv(tuple(round(c) for c in face.normal), tuple(loop.vert.co))
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


def save_demo_scene(path: Path) -> Path:
    """The demo scene, saved where the ``generate`` command opens it (``--blend``)."""
    import contextlib
    import io

    import bpy

    build_demo_scene()
    with contextlib.redirect_stdout(io.StringIO()):
        bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def build_tiny_depth_controlnet(folder: Path, model: str) -> Path:
    if (folder / "config.json").is_file():
        return folder
    from tiny_models import build_tiny_controlnet

    return build_tiny_controlnet(folder, model, seed=0)


def render(out_dir: Path, size: int | None = None, name: str = RENDER_NAME) -> Path:
    """Render the demo scene (Cycles, CPU, as ``build_demo_scene`` set it up) to ``out_dir/<name>``."""
    import contextlib
    import io

    import bpy

    scene = bpy.context.scene
    if size:
        scene.render.resolution_x = scene.render.resolution_y = size
    path = out_dir / name
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = "PNG"
    with contextlib.redirect_stdout(io.StringIO()):
        bpy.ops.render.render(write_still=True)
    if not path.is_file():
        raise RuntimeError(f"the render was not written to {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    parser.add_argument("--model", help="use this model (repo id, diffusers folder or .safetensors file)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny offline model even if a real one is there")
    parser.add_argument("--tiny-model-dir", type=Path,
                        help="where the tiny model is built or reused (default: tiny-sd-model beside --out)")
    parser.add_argument("--prompt", default=PROMPT, help="what to paint")
    parser.add_argument("--size", type=int, help="texture size in pixels (default: 512, 256 with the tiny model)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: 20, 4 with the tiny model)")
    parser.add_argument("--render-size", type=int, help="render size in pixels (default: the scene's 512)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    out_dir = args.out.resolve()
    model, tiny_reason = choose_model(args)
    sizes = dict(REAL if tiny_reason is None else TINY)
    sizes.update({k: v for k, v in (("size", args.size), ("steps", args.steps)) if v})
    if tiny_reason is not None:
        model = str(build_tiny(args.tiny_model_dir or out_dir.parent / "tiny-sd-model"))
    elif model == DEFAULT_MODEL and not (cached(DEFAULT_MODEL, "model_index.json")
                                         and cached(DEPTH_CONTROLNET, "config.json")):
        print(f"Downloading {DEFAULT_MODEL} (about 4 GB) and {DEPTH_CONTROLNET} (about 1.4 GB), once, into the "
              f"Hugging Face cache; on a CPU the "
              f"{sizes['steps']} steps at {sizes['size']} px then take several minutes.", flush=True)

    cli = launcher.start()
    with tempfile.TemporaryDirectory(prefix="latent_textures_demo_") as scratch:
        scene = save_demo_scene(Path(scratch) / "demo-scene.blend")
        code = cli.main([
            "generate", "--blend", str(scene), "--prompt", args.prompt, "--negative-prompt", NEGATIVE,
            "--model", model,
            "--width", str(sizes["size"]), "--height", str(sizes["size"]), "--steps", str(sizes["steps"]),
            "--seed", "0", "--seamless", "BOTH", "--target", "MATERIAL",
            "--out", str(out_dir / BLEND_NAME), "--texture-dir", str(out_dir),
        ], prog="tools/demo.py -> latent_textures")
    if code != 0:
        return code

    import bpy

    support = sys.modules[f"{cli.__name__}.support"]
    recipe = bpy.context.scene.latent_textures.result_image["latent_textures"].to_dict()
    texture = out_dir / f"{support.output_stem(recipe)}.png"
    try:
        render_path = render(out_dir, args.render_size)
    except RuntimeError as error:
        print(f"demo: error: the Cycles render failed: {error}", file=sys.stderr)
        return 1

    # The second texture: the cube as a whole, from views around it, conditioned on its depth.
    control = ["--control", "DEPTH"]
    if tiny_reason is not None:
        control += ["--control-model", str(build_tiny_depth_controlnet(Path(model).parent / "tiny-depth-controlnet",
                                                                       model))]
    code = cli.main([
        "generate", "--blend", str(out_dir / BLEND_NAME), "--prompt", args.prompt, "--negative-prompt", NEGATIVE,
        "--model", model, "--width", str(sizes["size"]), "--height", str(sizes["size"]),
        "--steps", str(sizes["steps"]), "--seed", "0", "--seamless", "NONE", "--mode", "TXT2IMG",
        "--target", "OBJECT", "--views", str(WHOLE_OBJECT_VIEWS), "--method", "GRID",
        "--texture-size", str(4 * sizes["size"]), *control,
        "--out", str(out_dir / BLEND_NAME), "--texture-dir", str(out_dir),
    ], prog="tools/demo.py -> latent_textures")
    if code != 0:
        return code
    whole = bpy.context.scene.latent_textures.result_image["latent_textures"].to_dict()
    whole_texture = out_dir / f"{support.output_stem(whole)}.png"
    try:
        whole_render = render(out_dir, args.render_size, WHOLE_RENDER_NAME)
    except RuntimeError as error:
        print(f"demo: error: the Cycles render of the whole-object texture failed: {error}", file=sys.stderr)
        return 1

    print()
    print(f"Latent Textures demo done in {time.monotonic() - started:.1f} s (model: {model})")
    print(f"  scene    {out_dir / BLEND_NAME}")
    print(f"  texture  {texture}")
    print(f"  render   {render_path}")
    print(f"  whole-object texture ({WHOLE_OBJECT_VIEWS} views, depth-conditioned, baked into the cube's UV map)")
    print(f"           {whole_texture}")
    print(f"  render   {whole_render}  (from a camera none of the views used)")
    if tiny_reason is not None:
        print()
        print("NOTE: this texture is NOISE. It comes from a tiny model with random, untrained weights, used")
        print(f"because {tiny_reason}.")
        print("It shows the whole path working (scene -> model -> texture -> material -> render), not what")
        print("Latent Textures paints. For a real texture:")
        print(f"  * on a machine with internet, run `make demo` again: it downloads {DEFAULT_MODEL} (about 4 GB)")
        print(f"    and its depth ControlNet {DEPTH_CONTROLNET} (about 1.4 GB) once into the Hugging Face cache;")
        print(f"  * or copy a cache that has them here, or pre-download them: `hf download {DEFAULT_MODEL}` and")
        print(f"    `hf download {DEPTH_CONTROLNET}`;")
        print("  * or point at a model you have: `.venv/bin/python tools/demo.py --model /path/to/diffusers-folder`")
        print("    (or a single-file .safetensors checkpoint).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
