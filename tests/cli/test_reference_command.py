"""``generate --reference FILE|IMAGE[:STRENGTH]``: the parsing alone (pure), then through the launcher in
subprocesses as a user runs it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cli_harness import FAST, REPO_ROOT, files_under, load_by_path, run_script

reference_text = load_by_path("lt_cli_reference_text", REPO_ROOT / "cli" / "reference_text.py")


@pytest.mark.parametrize("text, parsed", [
    ("wall.png", ("wall.png", None)),
    ("wall.png:0.4", ("wall.png", 0.4)),
    ("wall.png:0", ("wall.png", 0.0)),
    ("wall.png:1", ("wall.png", 1.0)),
    ("Wall Image", ("Wall Image", None)),
    ("Wall Image:.25", ("Wall Image", 0.25)),
    (r"C:\textures\wall.png", (r"C:\textures\wall.png", None)),
    (r"C:\textures\wall.png:0.4", (r"C:\textures\wall.png", 0.4)),
    ("C:/textures/wall.png:1e-1", ("C:/textures/wall.png", 0.1)),
    ("wall.png:1.5", ("wall.png:1.5", None)),  # not in [0, 1]: part of the name
    ("wall.png:-0.2", ("wall.png:-0.2", None)),
    ("wall.png:nan", ("wall.png:nan", None)),
    ("wall.png:", ("wall.png:", None)),
    ("scans:v2:0.7", ("scans:v2", 0.7)),  # the last ':' only
    (":0.5", ("", 0.5)),
])
def test_parse_reference(text, parsed):
    assert reference_text.parse_reference(text) == parsed


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_models_module, tiny_model):
    return tiny_models_module.build_tiny_ip_adapter(tmp_path_factory.mktemp("cli-ip") / "IP-Adapter", tiny_model)


def png_recipe(path) -> dict:
    with Image.open(path) as image:
        return json.loads(image.text["latent_textures"])


def test_a_reference_file_with_a_strength(tmp_path, run_launcher, scene_blend, tiny_model, adapter, inspect_blend):
    picture = tmp_path / "wall.png"
    Image.new("RGB", (24, 16), (200, 90, 40)).save(picture)
    out, textures = tmp_path / "out.blend", tmp_path / "textures"
    done = run_launcher("generate", "--blend", str(scene_blend), "--target", "image", "--prompt", "bricks",
                        "--model", str(tiny_model), *FAST, "--seed", "3", "--reference", f"{picture}:0.4",
                        "--reference-model", str(adapter),
                        "--out", str(out), "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    entry = png_recipe(png)["reference"]
    assert entry["image"] == "wall.png" and entry["strength"] == pytest.approx(0.4) and len(entry["sha256"]) == 64
    assert entry["model"] == str(adapter) and entry["revision"]
    images = inspect_blend(out)["images"]
    assert "wall.png" in images


WITH_IMAGE = """
import sys
import bpy

bpy.ops.wm.open_mainfile(filepath=sys.argv[-2])
image = bpy.data.images.new("Wall Scan", 16, 16)
image.pixels.foreach_set([0.2, 0.6, 0.3, 1.0] * 256)
image.pack()
image.use_fake_user = True
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
"""


def test_a_reference_image_of_the_blend_by_name(tmp_path, env, run_launcher, scene_blend, tiny_model, adapter):
    blend = tmp_path / "with_image.blend"
    done = run_script(WITH_IMAGE, str(scene_blend), str(blend), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    textures = tmp_path / "textures"
    done = run_launcher("generate", "--blend", str(blend), "--target", "image", "--prompt", "moss",
                        "--model", str(tiny_model), *FAST, "--reference", "Wall Scan:0.3",
                        "--reference-model", str(adapter), "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    entry = png_recipe(png)["reference"]
    assert entry["image"] == "Wall Scan" and entry["strength"] == pytest.approx(0.3)


BAD = {
    # name: (arguments, exit status, words the one error line must hold)
    "missing file": (["--reference", "/no/such/wall.png"], 1, ["--reference", "/no/such/wall.png"]),
    "strength out of range": (["--reference", "/no/such/wall.png:1.5"], 1, ["--reference", "0 to 1", "1.5"]),
    "no name": (["--reference", ":0.5"], 2, ["--reference", "image"]),
    "first view outside sequential": (["--reference-first-view"], 2, ["--reference-first-view", "SEQUENTIAL"]),
    "adapter missing offline": (["--reference", "PICTURE"], 1, ["IP-Adapter", "offline"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_reference_arguments_fail_before_anything_runs(case, tmp_path, run_launcher, scene_blend, tiny_model):
    extra, status, words = BAD[case]
    if "PICTURE" in extra:
        Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "moss.png")
        extra = [str(tmp_path / "moss.png") if item == "PICTURE" else item for item in extra]
    done = run_launcher("generate", "--blend", str(scene_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, *extra, "--out", str(tmp_path / "out" / "x.blend"),
                        cwd=tmp_path)
    assert done.returncode == status, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("latent_textures: error: "), done.stderr
    for word in words:
        assert word.lower() in lines[0].lower()
    assert files_under(tmp_path / "out") == []
    assert "Step" not in done.stdout
