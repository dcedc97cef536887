"""Shared pieces of the command-line tests: run things the way a user does, read what they wrote.

(A uniquely named module, since every test folder has a ``conftest``.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "tools" / "latent_textures.py"
DEMO = REPO_ROOT / "tools" / "demo.py"
TIMEOUT = 300
# The tests' sampling: tiny model, tiny images.
FAST = ["--width", "64", "--height", "64", "--steps", "2"]

SCENE_SCRIPT = textwrap.dedent(
    """
    import sys
    import bpy, bmesh

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    for name, x in (("Crate", -1.5), ("Barrel", 1.5)):
        mesh = bpy.data.meshes.new(name)
        bm = bmesh.new()
        bmesh.ops.create_cube(bm, size=1.0, calc_uvs=True)
        bm.to_mesh(mesh)
        bm.free()
        obj = bpy.data.objects.new(name, mesh)
        obj.location.x = x
        scene.collection.objects.link(obj)
    lamp = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", type="POINT"))
    scene.collection.objects.link(lamp)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = (0.0, -8.0, 0.0)
    camera.rotation_euler = (1.5708, 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
    """
)

# Prints one JSON line: every image (with its recipe) and every mesh object's material images.
INSPECT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import bpy

    bpy.ops.wm.open_mainfile(filepath=sys.argv[-1], load_ui=False)
    images = {}
    for image in bpy.data.images:
        recipe = image.get("latent_textures")
        images[image.name] = {
            "packed": image.packed_file is not None,
            "size": list(image.size),
            "recipe": recipe.to_dict() if recipe is not None else None,
        }
    objects = {}
    for obj in bpy.data.objects:
        if obj.type != "MESH":
            continue
        textures = []
        for slot in obj.material_slots:
            if slot.material is not None and slot.material.node_tree is not None:
                textures += [n.image.name for n in slot.material.node_tree.nodes
                             if n.type == "TEX_IMAGE" and n.image is not None]
        objects[obj.name] = {"textures": textures, "uv_maps": [uv.name for uv in obj.data.uv_layers]}
    print("INSPECT " + json.dumps({"images": images, "objects": objects}))
    """
)


def subprocess_env(hf_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BLENDER_USER_RESOURCES", None)  # set by tests/blender/harness.py in this process
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hf_cache), PYTHONUNBUFFERED="1")
    return env


def load_by_path(name: str, path: Path):
    """A module from a file (tools/ and the add-on root are not importable packages here)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]
