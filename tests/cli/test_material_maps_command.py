"""``generate --pbr``: the maps beside each texture file (16-bit normal and height), through the launcher."""

from __future__ import annotations

import json

from PIL import Image

from cli_harness import FAST, REPO_ROOT, files_under, load_by_path

support = load_by_path("lt_cli_support", REPO_ROOT / "cli" / "support.py")


def test_pbr_writes_each_map_beside_the_texture(tmp_path, run_launcher, tiny_model, tiny_marigold_intrinsics,
                                                tiny_marigold_normals):
    textures = tmp_path / "textures"
    done = run_launcher("generate", "--prompt", "slate", "--model", str(tiny_model), *FAST, "--seed", "3",
                        "--target", "material", "--pbr", "albedo,roughness,metallic,normal,height",
                        "--pbr-model", str(tiny_marigold_intrinsics), "--normals-model", str(tiny_marigold_normals),
                        "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    pngs = {p.name: p for p in files_under(textures)}
    (texture,) = [name for name in pngs if name.count("_") == 2]  # slate_3_<digest>.png
    stem = texture[:-len(".png")]
    assert set(pngs) == {texture} | {f"{stem}_{kind}.png" for kind in
                                     ("albedo", "roughness", "metallic", "normal", "height")}
    modes = {}
    for kind in ("albedo", "roughness", "metallic", "normal", "height"):
        with Image.open(pngs[f"{stem}_{kind}.png"]) as image:
            image.load()
            modes[kind] = image.mode
            recipe = json.loads(image.text["latent_textures"])
            assert recipe["pbr_map"] == kind and recipe["seed"] == 3 and recipe["prompt"] == "slate"
            assert image.size == (64, 64)
    assert modes["albedo"] == "RGB" and modes["roughness"] == modes["metallic"] == "L"
    assert modes["height"] in ("I;16", "I;16B", "I")  # 16-bit grey
    # 16-bit RGB: Pillow reads it as 8-bit RGB, so check the file's IHDR bit depth instead
    header = pngs[f"{stem}_normal.png"].read_bytes()[16:26]
    assert header[8] == 16 and header[9] == 2  # bit depth 16, colour type RGB


def test_pbr_with_an_unknown_map_is_a_usage_error(tmp_path, run_launcher, tiny_model):
    done = run_launcher("generate", "--prompt", "slate", "--model", str(tiny_model), *FAST, "--pbr", "albedo,shine",
                        "--texture-dir", str(tmp_path / "t"), cwd=tmp_path)
    assert done.returncode == 2 and "--pbr takes a comma-separated list" in done.stderr
    assert not (tmp_path / "t").exists()
