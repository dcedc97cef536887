"""``make demo``'s script (tools/demo.py) with the tiny model: three files and a plain summary."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image, ImageStat

from cli_harness import DEMO, TIMEOUT, files_under


def test_demo_with_the_tiny_model(tmp_path, env, tiny_model):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(out), "--tiny", "--tiny-model-dir", str(tiny_model),
         "--size", "64", "--steps", "2", "--render-size", "128"],  # the demo's path, at test speed
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    files = files_under(out)
    names = sorted(p.name for p in files)
    assert len(files) == 3 and "demo.blend" in names and "render.png" in names, names
    texture = next(p for p in files if p.name not in ("demo.blend", "render.png"))
    assert texture.suffix == ".png"
    for path in files:  # the summary names every file
        assert str(path) in done.stdout
    # It says plainly that this is noise from an untrained model, and how to get a real texture.
    assert "NOISE" in done.stdout and "untrained" in done.stdout
    assert "--model" in done.stdout and "hf download" in done.stdout

    with Image.open(out / "render.png") as render:
        assert render.size == (128, 128)
        spread = ImageStat.Stat(render.convert("L")).stddev[0]
        assert spread > 5  # a scene, not a blank frame
    with Image.open(texture) as image:
        assert "latent_textures" in image.text and image.size == (64, 64)
