"""The command line's pure helpers (cli/support.py): names, prompts files, PNG text, progress. No Blender."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image

from cli_harness import REPO_ROOT, load_by_path

support = load_by_path("lt_cli_support", REPO_ROOT / "cli" / "support.py")

RECIPE = {
    "prompt": "Rusty metal, 4K!", "negative_prompt": "", "model": "org/model", "mode": "TXT2IMG", "seed": 42,
    "steps": 20, "scheduler": "EULER", "guidance_scale": 7.5, "strength": 0.6, "width": 512, "height": 512,
    "seamless": "NONE", "target": "MATERIAL", "version": "0.1.0",
}


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 3), (200, 10, 10, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("text, slug", [
    ("Rusty metal, 4K!", "rusty_metal_4k"),
    ("  Crème brûlée tiles ", "creme_brulee_tiles"),
    ("日本", "texture"),
    ("", "texture"),
    ("a" * 60, "a" * 40),
    ("../../etc/passwd", "etc_passwd"),
])
def test_slugify(text, slug):
    assert support.slugify(text) == slug


def test_output_stem_follows_the_recipe():
    stem = support.output_stem(RECIPE)
    assert stem.startswith("rusty_metal_4k_42_") and len(stem.rsplit("_", 1)[1]) == 8
    assert support.output_stem(dict(RECIPE)) == stem  # same recipe, same name
    # Where the texture went, or the add-on version, does not change the picture: same name.
    assert support.output_stem({**RECIPE, "target": "IMAGE", "version": "9.9.9"}) == stem
    for field, value in (("steps", 21), ("model", "other/model"), ("negative_prompt", "blur"), ("seamless", "X")):
        assert support.output_stem({**RECIPE, field: value}) != stem, field


def test_whole_object_textures_are_named_per_mesh():
    crate = {**RECIPE, "target": "OBJECT", "mesh": "Crate.001", "uv_map": "UVMap", "texture_size": 1024,
             "object_method": "GRID", "object_views": 4, "views": [{"yaw": 0.0}]}
    stem = support.output_stem(crate)
    assert stem.startswith("rusty_metal_4k_42_") and stem.endswith("_crate_001")
    assert support.output_stem({**crate, "mesh": "Barrel"}).endswith("_barrel")
    # Two meshes whose names slug alike still get two files: the mesh is in the digest too.
    assert support.output_stem({**crate, "mesh": "Crate_001"}) != stem
    for field, value in (("texture_size", 2048), ("object_views", 6), ("object_method", "SEQUENTIAL"),
                         ("uv_map", "Other"), ("views", [{"yaw": 90.0}])):
        assert support.output_stem({**crate, field: value}) != stem, field
    assert support.output_stem({**RECIPE, "mesh": "Crate"}) == support.output_stem(RECIPE)  # only Whole Object


def test_parse_prompts_skips_blanks_and_comments():
    text = "\ufeffmossy stone\n\n# not this\n  red brick  \r\n#\nrust\n"
    assert support.parse_prompts(text.lstrip("\ufeff")) == ["mossy stone", "red brick", "rust"]


def test_read_prompts_file(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\ufeffa\nb\n", encoding="utf-8")
    assert support.read_prompts_file(path) == ["a", "b"]
    with pytest.raises(ValueError, match="not found"):
        support.read_prompts_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(ValueError, match="no prompts"):
        support.read_prompts_file(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        support.read_prompts_file(tmp_path / "latin1.txt")


def test_png_text_round_trip_read_by_pillow():
    text = support.recipe_png_text({**RECIPE, "prompt": "mousse de café, 苔"})
    data = support.png_with_text(tiny_png(), text)
    assert support.png_text(data) == text
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # verifies chunk CRCs
        assert image.size == (4, 3)
        assert image.text["parameters"] == text["parameters"]  # non-Latin-1: an iTXt chunk
        assert json.loads(image.text["latent_textures"])["prompt"] == "mousse de café, 苔"
    assert b"iTXt" in data and b"tEXt" in data


def test_png_text_replaces_same_keys_and_keeps_others():
    first = support.png_with_text(tiny_png(), {"latent_textures": "old", "Comment": "keep me"})
    second = support.png_with_text(first, {"latent_textures": "new"})
    assert support.png_text(second) == {"latent_textures": "new", "Comment": "keep me"}


def test_png_text_reads_ztxt():
    body = b"Title\0\0" + zlib.compress(b"compressed")
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    data = tiny_png()
    data = data[:33] + chunk + data[33:]  # after the 8-byte signature and the 25-byte IHDR chunk
    assert support.png_text(data) == {"Title": "compressed"}


def test_png_with_text_refuses_non_png():
    with pytest.raises(ValueError, match="not a PNG"):
        support.png_with_text(b"GIF89a", {"a": "b"})


def test_parameters_text():
    text = support.parameters_text({**RECIPE, "negative_prompt": "blurry", "mode": "IMG2IMG", "seamless": "BOTH"})
    prompt, negative, fields = text.split("\n")
    assert prompt == "Rusty metal, 4K!" and negative == "Negative prompt: blurry"
    assert "Steps: 20, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: org/model" in fields
    assert "Denoising strength: 0.6" in fields and "Tiling: BOTH" in fields


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_in_a_log():
    stream, clock = io.StringIO(), Clock()
    progress = support.Progress(stream, 2, interactive=False, log_interval=2.0, clock=clock)
    progress.start_image(1, "'moss'")
    for step in range(1, 5):
        clock.now += 1.0
        progress.step("DENOISE", step, 4)
    progress.finish_image("'LT_moss_1', seed 1")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/2] 'moss': starting"
    assert [line.split("] ")[-1] for line in lines[1:3]] == ["step 2/4 2.0 s", "step 4/4 4.0 s"]  # throttled
    assert "done in 4.0 s: 'LT_moss_1', seed 1" in lines[3]
    assert lines[4].startswith("batch [############------------] 1/2 images, 4.0 s, about 4.0 s left")


def test_progress_on_a_terminal_redraws_one_line():
    stream = io.StringIO()
    progress = support.Progress(stream, 1, interactive=True, clock=Clock())
    progress.start_image(1, "'moss'")
    progress.step("DOWNLOAD", 500_000_000, 2_000_000_000)
    progress.step("DENOISE", 1, 2)
    progress.finish_image("'LT_moss_1', seed 1")
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("seed 1\n")  # one line, rewritten with \r
    assert "downloading 500.0 MB / 2.0 GB" in out and "step 1/2" in out
    assert "batch" not in out  # a single image has no batch bar


@pytest.mark.parametrize("seconds, text", [(3.14, "3.1 s"), (75, "1:15 min"), (3725, "1:02:05 h")])
def test_format_seconds(seconds, text):
    assert support.format_seconds(seconds) == text
