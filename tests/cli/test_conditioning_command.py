"""``generate`` with --control, --mask and --lora, through the launcher in subprocesses as a user runs it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cli_harness import FAST, files_under


@pytest.fixture(scope="module")
def controlnet(tmp_path_factory, tiny_models_module, tiny_model):
    return tiny_models_module.build_tiny_controlnet(tmp_path_factory.mktemp("cli-cn") / "cn", tiny_model)


@pytest.fixture(scope="module")
def lora(tmp_path_factory, tiny_models_module, tiny_model):
    return tiny_models_module.build_tiny_lora(tmp_path_factory.mktemp("cli-lora") / "lora", tiny_model)


def png_recipe(path) -> dict:
    with Image.open(path) as image:
        return json.loads(image.text["latent_textures"])


def test_control_depth_keeps_its_control_image(tmp_path, run_launcher, scene_blend, tiny_model, controlnet,
                                               inspect_blend):
    out, textures = tmp_path / "out.blend", tmp_path / "textures"
    done = run_launcher("generate", "--blend", str(scene_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--seed", "5", "--control", "depth",
                        "--control-model", str(controlnet), "--control-strength", "0.7",
                        "--out", str(out), "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    recipe = png_recipe(png)
    assert (recipe["control"], recipe["control_strength"]) == ("DEPTH", pytest.approx(0.7))
    assert recipe["control_model"] == str(controlnet)
    images = inspect_blend(out)["images"]
    result = next(name for name, info in images.items() if info["recipe"])
    assert images[result]["recipe"]["control_image"] == f"{result} control"
    assert images[f"{result} control"]["packed"]


def test_inpaint_with_a_mask_file_and_a_weighted_lora(tmp_path, run_launcher, scene_blend, tiny_model, lora):
    start, mask = tmp_path / "start.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), (120, 80, 40)).save(start)
    white_left = Image.new("L", (64, 64), 0)
    white_left.paste(255, (0, 0, 32, 64))
    white_left.save(mask)
    textures = tmp_path / "textures"
    done = run_launcher("generate", "--blend", str(scene_blend), "--target", "image", "--mode", "inpaint",
                        "--source-image", str(start), "--mask", str(mask), "--mask-blur", "0", "--strength", "1",
                        "--lora", f"{lora}:0.5", "--prompt", "bark", "--model", str(tiny_model), *FAST,
                        "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    recipe = png_recipe(png)
    assert recipe["mode"] == "INPAINT" and recipe["mask_image"] == "mask.png"
    assert [entry["weight"] for entry in recipe["loras"]] == [0.5]
    with Image.open(png) as image:
        kept = image.convert("RGB").crop((33, 0, 64, 64))
        assert set(kept.getdata()) == {(120, 80, 40)}  # outside the mask: the source, exactly


BAD = {
    # name: (arguments, exit status, words the one error line must hold)
    "strength above 2": (["--control", "depth", "--control-strength", "3"], 2, ["--control-strength", "2"]),
    "lora weight": (["--lora", "style.safetensors:5"], 2, ["--lora", "-2", "2"]),
    "mask without inpaint": (["--mask", "mask.png"], 2, ["--mask", "INPAINT"]),
    "missing controlnet": (["--control", "depth", "--control-model", "/no/such/controlnet"], 1,
                           ["--control-model", "/no/such/controlnet"]),
    "missing lora": (["--lora", "/no/such/style.safetensors"], 1, ["--lora", "/no/such/style.safetensors"]),
    "pickled lora": (["--lora", "PICKLE"], 1, ["--lora", "pickle"]),
    "lora neither file nor repo id": (["--lora", "my style/v2"], 1, ["--lora", "my style/v2", "repo id"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_conditioning_arguments_fail_before_anything_runs(case, tmp_path, run_launcher, scene_blend, tiny_model):
    extra, status, words = BAD[case]
    if "PICKLE" in extra:
        pickled = tmp_path / "style.bin"
        pickled.write_bytes(b"\x80\x04 not a real pickle")
        extra = [str(pickled) if item == "PICKLE" else item for item in extra]
    done = run_launcher("generate", "--blend", str(scene_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, *extra, "--out", str(tmp_path / "out" / "x.blend"),
                        cwd=tmp_path)
    assert done.returncode == status, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("latent_textures: error: "), done.stderr
    for word in words:
        assert word.lower() in lines[0].lower()
    assert files_under(tmp_path / "out") == []
    assert "Step" not in done.stdout  # nothing was generated
