"""``generate --target OBJECT`` (Whole Object) through the launcher in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import textwrap

import pytest
from PIL import Image

from cli_harness import FAST, REPO_ROOT, error_lines, files_under, load_by_path, run_script

support = load_by_path("lt_cli_support", REPO_ROOT / "cli" / "support.py")

UV_SCENE_SCRIPT = textwrap.dedent(
    """
    import sys
    import bpy

    bpy.ops.wm.read_homefile(use_factory_startup=True)
    bpy.data.objects["Cube"].name = "Crate"
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(3.0, 0.0, 0.0))
    bpy.context.active_object.name = "Barrel"
    bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
    """
)


@pytest.fixture(scope="module")
def uv_blend(tmp_path_factory, env):
    """Two unwrapped meshes ('Crate', 'Barrel': Blender's cube primitives), a camera and a light."""
    path = tmp_path_factory.mktemp("uv-scene") / "unwrapped.blend"
    done = run_script(UV_SCENE_SCRIPT, str(path), env=env)
    assert done.returncode == 0 and path.is_file(), done.stderr[-3000:]
    return path


def test_whole_object_bakes_each_mesh_and_keeps_the_views(tmp_path, run_launcher, uv_blend, tiny_model,
                                                         inspect_blend):
    out = tmp_path / "out.blend"
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate,Barrel", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--seed", "3", "--target", "object", "--views", "2",
                        "--method", "grid", "--texture-size", "256", "--keep-view-images", "--out", str(out),
                        "--texture-dir", str(tmp_path / "textures"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    pngs = files_under(tmp_path / "textures")
    written = {}
    for path in pngs:  # one texture per mesh, each with its recipe, named after its mesh
        with Image.open(path) as png:
            recipe = json.loads(png.text["latent_textures"])
            assert png.size == (256, 256)
        assert recipe["target"] == "OBJECT" and len(recipe["views"]) == 2
        assert path.stem.endswith("_" + support.slugify(recipe["mesh"]))
        written[recipe["mesh"]] = path
    assert len(written) == len(pngs) == 2  # Crate's and Barrel's meshes
    assert "Done: 2 textures" in done.stdout
    images = inspect_blend(out)["images"]
    textures = {name: info for name, info in images.items()
                if info["recipe"] and info["recipe"].get("mesh") and "view_index" not in info["recipe"]}
    assert len(textures) == 2  # one per mesh
    for info in textures.values():
        recipe = info["recipe"]
        assert recipe["target"] == "OBJECT" and recipe["texture_size"] == 256 and len(recipe["views"]) == 2
        assert info["packed"]
    views = [info["recipe"]["view_index"] for info in images.values() if info["recipe"]
             and "view_index" in info["recipe"]]
    assert sorted(views) == [1, 2]


def test_object_options_need_target_object_and_text_to_image(tmp_path, run_launcher, uv_blend, tiny_model):
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--views", "3", "--target", "material",
                        "--out", str(tmp_path / "a.blend"), cwd=tmp_path)
    assert done.returncode == 2 and "--views needs --target OBJECT" in done.stderr
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 64), (90, 60, 30)).save(start)
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--target", "object", "--mode", "img2img",
                        "--source-image", str(start), "--out", str(tmp_path / "b.blend"), cwd=tmp_path)
    assert done.returncode == 1 and any("set Mode to Text to Image" in line for line in error_lines(done.stderr))
    assert not (tmp_path / "b.blend").exists()


def test_method_sync_runs_all_views_together_and_records_it(tmp_path, run_launcher, uv_blend, tiny_model):
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--seed", "3", "--target", "object", "--views", "2",
                        "--method", "sync", "--sync-fraction", "0.5", "--sync-attention", "neighbours",
                        "--texture-size", "256",
                        "--out", str(tmp_path / "out.blend"),
                        "--texture-dir", str(tmp_path / "textures"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = files_under(tmp_path / "textures")
    with Image.open(path) as png:
        recipe = json.loads(png.text["latent_textures"])
    assert recipe["object_method"] == "SYNC" and recipe["sync"]["fraction"] == pytest.approx(0.5)
    assert recipe["sync"]["attention"] == "NEIGHBOURS"
