"""``latent_textures upscale`` through the launcher, in subprocesses, as a user runs it."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cli_harness import files_under, error_lines


def _png(path, width: int, height: int) -> None:
    pixels = (np.random.default_rng(2).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def test_upscale_an_image_file_to_a_png_with_its_recipe(tmp_path, run_launcher):
    source = tmp_path / "wall.png"
    _png(source, 24, 16)
    textures = tmp_path / "textures"
    done = run_launcher("upscale", "--image", str(source), "--factor", "4", "--strength", "0", "--seamless", "X",
                        "--seed", "3", "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    pngs = files_under(textures)
    assert len(pngs) == 1
    with Image.open(pngs[0]) as image:
        assert image.size == (96, 64)
        recipe = json.loads(image.text["latent_textures"])
    assert recipe["upscale"]["factor"] == 4 and recipe["upscale"]["seamless"] == "X"
    assert recipe["upscale"]["source"] == "wall.png"


def test_upscale_with_the_model_redraws_tiles(tmp_path, run_launcher, tiny_model, tiny_tile_controlnet):
    source = tmp_path / "wall.png"
    _png(source, 48, 32)
    textures = tmp_path / "textures"
    done = run_launcher("upscale", "--image", str(source), "--factor", "2", "--strength", "0.5", "--model",
                        str(tiny_model), "--control-model", str(tiny_tile_controlnet), "--tile-size", "80",
                        "--seed", "4",
                        "--prompt", "stone", "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    with Image.open(png) as image:
        assert image.size == (96, 64)
        recipe = json.loads(image.text["latent_textures"])["upscale"]
    assert recipe["method"] == "TILED_DIFFUSION" and recipe["tiles"] >= 2 and recipe["prompt"] == "stone"


def test_bad_upscale_arguments_write_nothing(tmp_path, run_launcher):
    source = tmp_path / "wall.png"
    _png(source, 16, 16)
    textures = tmp_path / "textures"
    for args, message in (
        (("--image", str(tmp_path / "missing.png")), "--image is neither"),
        (("--image", str(source), "--strength", "2"), "--strength must be from 0 to 1"),
        (("--image", str(source), "--factor", "3"), "invalid choice"),
        (("--image", str(source), "--noise-level", "400"), "--noise-level must be from 0 to 350"),
        (("--image", str(source), "--method", "esrgan"), "invalid choice"),
        # Blender's operator property clamps at its max without a word: the CLI refuses first.
        (("--image", str(source), "--tile-size", "4096"), "--tile-size must be 0 (the model's own size) or a multiple"),
        (("--image", str(source), "--tile-size", "100"), "from 72 to 2048 px"),
    ):
        done = run_launcher("upscale", *args, "--texture-dir", str(textures), cwd=tmp_path)
        assert done.returncode != 0
        assert message in done.stderr, done.stderr[-2000:]
        assert len(error_lines(done.stderr)) == 1
    assert not textures.exists()


def test_upscale_with_the_x4_upscaler(tmp_path, run_launcher, tiny_x4_upscaler):
    source = tmp_path / "wall.png"
    _png(source, 48, 32)
    textures = tmp_path / "textures"
    done = run_launcher("upscale", "--image", str(source), "--factor", "2", "--method", "x4_upscaler",
                        "--upscaler-model", str(tiny_x4_upscaler), "--noise-level", "40", "--tile-size", "128",
                        "--seed", "4",
                        "--prompt", "stone", "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    with Image.open(png) as image:
        assert image.size == (96, 64)
        recipe = json.loads(image.text["latent_textures"])["upscale"]
    assert recipe["method"] == "X4_UPSCALER" and recipe["noise_level"] == 40 and recipe["tiles"] >= 2
    assert recipe["upscaler_model"] == str(tiny_x4_upscaler)
