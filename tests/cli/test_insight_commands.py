"""``generate --filmstrip`` and ``compare`` through the launcher, in subprocesses, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cli_harness import FAST, files_under


def png_pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def png_recipe(path) -> dict:
    with Image.open(path) as image:
        image.load()
        return json.loads(image.text["latent_textures"])


def test_generate_filmstrip_writes_sheet_and_frames(tmp_path, run_launcher, tiny_model):
    textures = tmp_path / "textures"
    done = run_launcher(
        "generate", "--prompt", "oak planks", "--model", str(tiny_model), *FAST, "--seed", "7",
        "--scheduler", "EULER", "--target", "IMAGE", "--filmstrip", "--texture-dir", str(textures), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = files_under(textures)
    (texture,) = [f for f in files if f.parent == textures and not f.stem.endswith("_filmstrip")]
    sheet = textures / f"{texture.stem}_filmstrip.png"
    frames = sorted((textures / f"{texture.stem}_filmstrip").glob("step_*.png"))
    assert sheet in files and [f.name for f in frames] == ["step_001.png", "step_002.png"]
    assert png_recipe(sheet)["insight"] == "filmstrip" and png_recipe(sheet)["frames"] == 2
    np.testing.assert_array_equal(png_pixels(frames[-1]), png_pixels(texture))  # the last frame is the result


def test_compare_cell_equals_generate(tmp_path, run_launcher, tiny_model):
    grid_png = tmp_path / "grid.png"
    done = run_launcher(
        "compare", "--prompt", "oak planks", "--model", str(tiny_model), *FAST, "--seed", "7",
        "--guidance-values", "1, 7.5", "--schedulers", "EULER, DDIM", "--out-png", str(grid_png), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    recipe = png_recipe(grid_png)
    assert recipe["insight"] == "compare" and recipe["seed"] == 7 and recipe["row_values"] == "EULER, DDIM"
    textures = tmp_path / "textures"
    done = run_launcher(
        "generate", "--prompt", "oak planks", "--model", str(tiny_model), *FAST, "--seed", "7", "--guidance", "7.5",
        "--scheduler", "DDIM", "--target", "IMAGE", "--texture-dir", str(textures), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (texture,) = files_under(textures)
    top, left = recipe["cell_tops"][3], recipe["cell_lefts"][3]  # row DDIM, column 7.5
    cell = png_pixels(grid_png)[top : top + 64, left : left + 64]
    np.testing.assert_array_equal(cell, png_pixels(texture))


def test_compare_unknown_scheduler_writes_nothing(tmp_path, run_launcher, tiny_model):
    grid_png = tmp_path / "grid.png"
    done = run_launcher(
        "compare", "--prompt", "oak planks", "--model", str(tiny_model), *FAST,
        "--schedulers", "EULER, WARP", "--out-png", str(grid_png), cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "unknown: WARP" in done.stderr
    assert not grid_png.exists()
