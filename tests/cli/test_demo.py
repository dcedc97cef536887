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
    assert len(files) == 5 and {"demo.blend", "render.png", "render_whole_object.png"} <= set(names), names
    textures = [p for p in files if p.name not in ("demo.blend", "render.png", "render_whole_object.png")]
    assert len(textures) == 2 and all(p.suffix == ".png" for p in textures)
    texture = next(p for p in textures if Image.open(p).size == (64, 64))
    whole = next(p for p in textures if p != texture)
    with Image.open(whole) as image:
        assert image.size == (256, 256)  # texture_size = 4 x the view size
        assert '"target": "OBJECT"' in image.text["latent_textures"] and '"views"' in image.text["latent_textures"]
    for path in files:  # the summary names every file
        assert str(path) in done.stdout
    # It says plainly that this is noise from an untrained model, and how to get a real texture.
    assert "NOISE" in done.stdout and "untrained" in done.stdout
    assert "--model" in done.stdout and "hf download" in done.stdout

    for name in ("render.png", "render_whole_object.png"):
        with Image.open(out / name) as render:
            assert render.size == (128, 128)
            spread = ImageStat.Stat(render.convert("L")).stddev[0]
            assert spread > 5  # a scene, not a blank frame
    with Image.open(texture) as image:
        assert "latent_textures" in image.text and image.size == (64, 64)


CHOOSE = """
import argparse, sys
sys.path.insert(0, sys.argv[1])
import demo
print(repr(demo.choose_model(argparse.Namespace(model=None, tiny=False))))
"""


def _cache_file(cache, repo_id: str, filename: str) -> None:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_text("{}")


def test_the_demo_takes_the_real_model_only_with_its_depth_controlnet_when_offline(tmp_path, env):
    from cli_harness import load_by_path, REPO_ROOT

    control = load_by_path("demo_control", REPO_ROOT / "engine" / "control.py")
    demo_source = DEMO.read_text()
    assert f'DEPTH_CONTROLNET = "{control.DEFAULT_CONTROL_MODELS[("SD1", "DEPTH")]}"' in demo_source

    cache = tmp_path / "hub"
    offline = dict(env, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    _cache_file(cache, "stable-diffusion-v1-5/stable-diffusion-v1-5", "model_index.json")

    def choice() -> str:
        done = subprocess.run([sys.executable, "-c", CHOOSE, str(DEMO.parent)], env=offline, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    # The model alone cannot run the whole-object half offline: the demo says which part is missing.
    assert "lllyasviel/control_v11f1p_sd15_depth is not in the Hugging Face cache" in choice()
    _cache_file(cache, "lllyasviel/control_v11f1p_sd15_depth", "config.json")
    assert choice().strip() == "('stable-diffusion-v1-5/stable-diffusion-v1-5', None)"
