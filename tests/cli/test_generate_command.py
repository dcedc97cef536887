"""``latent_textures generate`` / ``models`` through the launcher, in subprocesses, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from cli_harness import FAST, LAUNCHER, REPO_ROOT, TIMEOUT, error_lines, files_under, load_by_path

support = load_by_path("lt_cli_support", REPO_ROOT / "cli" / "support.py")  # pure: no bpy, no relative imports


def png_recipe(path) -> dict:
    with Image.open(path) as image:
        image.load()  # Pillow checks every chunk's CRC on the way
        return json.loads(image.text["latent_textures"])


def wrote(stdout: str) -> list[str]:
    return [line[len("Wrote "):] for line in stdout.splitlines() if line.startswith("Wrote ")]


def test_generate_onto_a_saved_blend(tmp_path, run_launcher, scene_blend, tiny_model, inspect_blend):
    before = scene_blend.read_bytes()
    out, textures = tmp_path / "out" / "props_textured.blend", tmp_path / "textures"
    done = run_launcher(
        "generate", "--blend", str(scene_blend), "--objects", "Crate", "--prompt", "oak planks",
        "--negative-prompt", "blurry", "--model", str(tiny_model), *FAST, "--seed", "7", "--scheduler", "euler",
        "--out", str(out), "--texture-dir", str(textures), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert scene_blend.read_bytes() == before  # the input file is not touched

    pngs = files_under(textures)
    assert len(pngs) == 1 and pngs[0].suffix == ".png"
    assert sorted(wrote(done.stdout)) == sorted([str(out), str(pngs[0])])
    recipe = png_recipe(pngs[0])
    assert recipe["prompt"] == "oak planks" and recipe["negative_prompt"] == "blurry"
    assert (recipe["seed"], recipe["steps"], recipe["width"], recipe["height"]) == (7, 2, 64, 64)
    assert recipe["scheduler"] == "EULER" and recipe["model"] == str(tiny_model)
    assert pngs[0].name == f"{support.output_stem(recipe)}.png" == f"oak_planks_7_{support.recipe_digest(recipe)}.png"
    with Image.open(pngs[0]) as image:
        assert image.size == (64, 64)
        assert "Seed: 7" in image.text["parameters"]

    scene = inspect_blend(out)
    generated = {name: info for name, info in scene["images"].items() if info["recipe"]}
    assert len(generated) == 1
    (name, info), = generated.items()
    assert info["packed"] and info["size"] == [64, 64]
    assert info["recipe"] == recipe  # the PNG carries exactly the recipe stored on the image
    assert scene["objects"]["Crate"]["textures"] == [name]
    assert scene["objects"]["Barrel"]["textures"] == []


def test_batch_from_a_prompts_file(tmp_path, run_launcher, scene_blend, cached_tiny_model, hf_cache, inspect_blend):
    prompts = ["mossy stone", "# a comment line", "", "rusty metal plate", "red brick wall  "]
    expected = ["mossy stone", "rusty metal plate", "red brick wall"]
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    out, textures = tmp_path / "batch.blend", tmp_path / "textures"
    args = ["generate", "--blend", str(scene_blend), "--objects", "Barrel", "--prompts-file", str(prompts_file),
            "--model", cached_tiny_model, "--model-cache", str(hf_cache), *FAST, "--seed", "3",
            "--texture-dir", str(textures)]
    done = run_launcher(*args, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # N prompts => N textures, each with its own recipe, in the PNG files ...
    pngs = files_under(textures)
    recipes = {png.name: png_recipe(png) for png in pngs}
    assert sorted(r["prompt"] for r in recipes.values()) == sorted(expected)
    for name, recipe in recipes.items():
        assert name == f"{support.output_stem(recipe)}.png"
        assert (recipe["seed"], recipe["model"], recipe["steps"]) == (3, cached_tiny_model, 2)
    # ... and in the saved scene, all on the Barrel's material
    scene = inspect_blend(out)
    generated = {name: info["recipe"] for name, info in scene["images"].items() if info["recipe"]}
    assert sorted(r["prompt"] for r in generated.values()) == sorted(expected)
    assert sorted(scene["objects"]["Barrel"]["textures"]) == sorted(generated)
    assert scene["objects"]["Crate"]["textures"] == []
    # Progress: a bar per image and one for the batch, on stderr.
    assert "[3/3]" in done.stderr and "batch [" in done.stderr and "3/3 images" in done.stderr

    # Idempotent: the same command writes the same files, byte for byte.
    first = {png.name: png.read_bytes() for png in pngs}
    again = run_launcher(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {png.name: png.read_bytes() for png in files_under(textures)} == first


def _broken_model(folder):
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    return folder


BAD_ARGUMENTS = {
    # name: (extra arguments, exit status, words the message must hold)
    "missing model": (["--model", "/no/such/model"], 1, ["--model", "/no/such/model"]),
    "model not cached offline": (["--model", "nobody/not-cached"], 1, ["nobody/not-cached", "offline"]),
    "unknown object": (["--objects", "Crate,Nope"], 1, ["unknown object 'Nope'", "Barrel", "Crate"]),
    "object is not a mesh": (["--objects", "Lamp"], 1, ["'Lamp'", "not a mesh"]),
    "bad width": (["--width", "100"], 2, ["--width", "multiple of 8", "100"]),
    "too large": (["--height", "8192"], 2, ["--height", "4096"]),
    "bad steps": (["--steps", "0"], 2, ["--steps"]),
    "bad scheduler": (["--scheduler", "FAST"], 2, ["--scheduler", "FAST"]),
    "missing blend": (["--blend", "/no/such/file.blend"], 1, ["--blend", "/no/such/file.blend"]),
    "missing prompts file": (["--prompts-file", "/no/prompts.txt"], 1, ["prompts file", "/no/prompts.txt"]),
    "no output": (["--no-output"], 2, ["--out", "--texture-dir"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_fail_with_one_line_and_no_files(case, tmp_path, run_launcher, scene_blend, tiny_model):
    extra, status, words = BAD_ARGUMENTS[case]
    base = {"--blend": str(scene_blend), "--objects": "Crate", "--prompt": "oak", "--model": str(tiny_model),
            "--out": str(tmp_path / "out" / "x.blend"), "--texture-dir": str(tmp_path / "out" / "textures")}
    if extra == ["--no-output"]:
        del base["--out"], base["--texture-dir"]
        extra = []
    for option in extra[::2]:
        base.pop(option, None)
    if "--prompts-file" in extra:
        del base["--prompt"]
    args = [item for pair in base.items() for item in pair] + FAST + extra  # the bad value comes last
    done = run_launcher("generate", *args, cwd=tmp_path)

    assert done.returncode == status, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr  # exactly one line: the reason
    assert lines[0].startswith("latent_textures: error: ")
    for word in words:
        assert word in lines[0]
    assert files_under(tmp_path / "out") == []
    assert wrote(done.stdout) == [] and "Done:" not in done.stdout


def test_a_failing_generation_writes_nothing(tmp_path, run_launcher, scene_blend):
    """The operator itself fails (a model folder without its parts): still one error line, no files."""
    model = _broken_model(tmp_path / "broken-model")
    done = run_launcher("generate", "--blend", str(scene_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(model), *FAST, "--out", str(tmp_path / "out" / "x.blend"),
                        "--texture-dir", str(tmp_path / "out" / "tex"), cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and errors[0].startswith("latent_textures: error: ")
    assert done.stderr.rstrip().splitlines()[-1] == errors[0]
    assert files_under(tmp_path / "out") == []


def test_help_explains_every_option(tmp_path, run_launcher):
    done = run_launcher("generate", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for option in ("--blend", "--objects", "--prompt", "--negative-prompt", "--prompts-file", "--model",
                   "--model-cache", "--mode", "--source", "--source-image", "--strength", "--width", "--height",
                   "--steps", "--guidance", "--scheduler", "--seed", "--seamless", "--target", "--out",
                   "--texture-dir"):
        assert f"  {option} " in done.stdout, option
    for word in ("DPM_SOLVER_MULTISTEP", "PROJECT", "BOTH", "IMG2IMG", "exit status"):
        assert word in done.stdout
    top = run_launcher("--help", cwd=tmp_path)
    assert top.returncode == 0 and "generate" in top.stdout and "models" in top.stdout


def test_models_lists_the_cache(tmp_path, run_launcher, cached_tiny_model, hf_cache):
    done = run_launcher("models", "--model-cache", str(hf_cache), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["cache_dir"] == str(hf_cache)
    assert [m["repo_id"] for m in listing["models"]] == [cached_tiny_model]
    assert listing["models"][0]["is_pipeline"] is True
    assert listing["default_model"]["cached"] is False
    assert listing["online_access"] is False  # HF_HUB_OFFLINE=1

    table = run_launcher("models", cwd=tmp_path)  # the launcher's default cache: HF_HUB_CACHE
    assert table.returncode == 0, table.stderr
    assert cached_tiny_model in table.stdout and "not cached" in table.stdout


def test_models_lists_both_caches_marked_and_the_model_folders(
    tmp_path, run_launcher, cached_tiny_model, hf_cache, tiny_model, tiny_models_module
):
    """The same repo in the add-on's cache and the shared one: both listed, the add-on's copy is the one used;
    a folder of checkpoints is read from its file headers."""
    addon = tmp_path / "addon-cache"
    tiny_models_module.install_in_hf_cache(tiny_model, addon, cached_tiny_model)
    folder = tmp_path / "checkpoints"
    tiny_models_module.write_safetensors_layout(folder / "xl.safetensors", tiny_models_module.LAYOUTS["sdxl_checkpoint"])
    arguments = ("models", "--model-cache", str(addon), "--folder", str(folder))
    done = run_launcher(*arguments, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert [(c["cache"], c["cache_dir"]) for c in listing["caches"]] == [
        ("add-on cache", str(addon)), ("Hugging Face cache", str(hf_cache))]
    assert [(m["repo_id"], m["cache"], m["used"]) for m in listing["models"]] == [
        (cached_tiny_model, "add-on cache", True), (cached_tiny_model, "Hugging Face cache", False)]
    assert [(Path(m["path"]).name, m["kind"], m["family"]) for m in listing["model_folders"]["models"]] == [
        ("xl.safetensors", "CHECKPOINT", "SDXL")]
    table = run_launcher(*arguments, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "[add-on cache]" in table.stdout and "[Hugging Face cache, not used" in table.stdout
    assert "xl.safetensors · SDXL · model" in table.stdout
    missing = run_launcher("models", "--folder", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode != 0 and "not a folder" in missing.stderr


REGISTRATION_SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("loader", {loader!r})
    loader = importlib.util.module_from_spec(spec); spec.loader.exec_module(loader)
    loader.isolate_user_resources()
    import bpy
    package = loader.load_extension("lt_cli_probe")
    # Registering the id again must collide with the extension's registration ...
    handle = bpy.utils.register_cli_command("latent_textures", lambda argv: 0)
    bpy.utils.unregister_cli_command(handle)
    print("---- disabled", flush=True)
    loader.disable(package.__name__)
    # ... and not once the extension is disabled (it unregistered its command).
    handle = bpy.utils.register_cli_command("latent_textures", lambda argv: 0)
    print("HANDLE", type(handle).__name__, flush=True)
    bpy.utils.unregister_cli_command(handle)
    """
)


def test_the_extension_registers_the_blender_command(tmp_path, env):
    script = REGISTRATION_SCRIPT.format(loader=str(REPO_ROOT / "tools" / "extension_loader.py"))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    enabled, disabled = done.stdout.split("---- disabled")
    assert 'duplicate command "latent_textures"' in enabled
    assert "duplicate" not in disabled and "HANDLE PyCapsule" in disabled


def test_image_to_image_from_a_file_only_writes_the_texture(tmp_path, run_launcher, scene_blend, tiny_model):
    start = tmp_path / "start.png"
    Image.new("RGB", (32, 32), (120, 80, 40)).save(start)
    textures = tmp_path / "textures"
    done = run_launcher("generate", "--blend", str(scene_blend), "--target", "image", "--mode", "img2img",
                        "--source-image", str(start), "--strength", "0.5", "--prompt", "bark",
                        "--model", str(tiny_model), *FAST, "--texture-dir", str(textures), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (png,) = files_under(textures)
    recipe = png_recipe(png)
    assert (recipe["mode"], recipe["target"], recipe["strength"]) == ("IMG2IMG", "IMAGE", pytest.approx(0.5))
    with Image.open(png) as image:
        source = image.text["latent_textures_source"]
    assert source == f"IMAGE:{start}"
    assert png.name == f"{support.output_stem(recipe, source)}.png" != f"{support.output_stem(recipe)}.png"


def test_generate_without_a_blend_textures_blenders_startup_cube(tmp_path, run_launcher, tiny_model, inspect_blend):
    """No --blend: Blender's factory startup scene, its cube textured on its own material (the demo scene is the demo's)."""
    out = tmp_path / "cube.blend"
    done = run_launcher("generate", "--prompt", "slate", "--model", str(tiny_model), *FAST, "--target", "material",
                        "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    scene = inspect_blend(out)
    assert sorted(scene["objects"]) == ["Cube"]
    (texture,) = scene["objects"]["Cube"]["textures"]
    assert scene["images"][texture]["recipe"]["prompt"] == "slate"


FULL_DISK_SCRIPT = """
import builtins, errno, io, os, runpy, sys

folder, launcher, args = sys.argv[1], sys.argv[2], sys.argv[3:]
real_open, opened = builtins.open, []


class FullDisk(io.BufferedWriter):
    def write(self, data):  # half of it lands, then the disk is full
        super().write(bytes(data)[: len(data) // 2])
        self.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)


def open_on_a_full_disk(file, mode="r", *rest, **options):
    handle = real_open(file, mode, *rest, **options)
    if isinstance(file, (str, os.PathLike)) and str(file).startswith(folder) and "b" in mode and "w" in mode:
        opened.append(file)
        if len(opened) == 2:  # the first texture is written whole, the second fills the disk
            return FullDisk(handle.detach())
    return handle


builtins.open = io.open = open_on_a_full_disk
sys.argv = [launcher, *args]
runpy.run_path(launcher, run_name="__main__")
"""


def test_a_full_disk_while_writing_textures_leaves_no_file(tmp_path, env, scene_blend, tiny_model):
    """The second PNG of a batch hits a full disk (ENOSPC at its file write, half of it written): one error
    line that says so, and neither PNG, nor a temporary file, nor the .blend is left."""
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("mossy stone\nrusty metal plate\n", encoding="utf-8")
    textures, out = tmp_path / "out" / "textures", tmp_path / "out" / "x.blend"
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path / "out"), str(LAUNCHER), "generate", "--blend",
         str(scene_blend), "--objects", "Barrel", "--prompts-file", str(prompts_file), "--model", str(tiny_model),
         *FAST, "--seed", "3", "--out", str(out), "--texture-dir", str(textures)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "the disk is full" in errors[0] and "nothing was kept" in errors[0], errors
    assert files_under(tmp_path / "out") == []
