"""``generate --target OBJECT --color-match`` (issue 31 item 4) through the launcher in a subprocess."""

from __future__ import annotations

import json

from PIL import Image

from cli_harness import FAST, files_under
from test_object_command import uv_blend  # noqa: F401 (the two unwrapped meshes' .blend)


def test_color_match_reaches_the_run_and_its_recipe_and_needs_target_object(tmp_path, run_launcher, uv_blend,
                                                                             tiny_model):
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--seed", "3", "--target", "object", "--views", "2",
                        "--method", "sequential", "--color-match", "histogram", "--texture-size", "256",
                        "--out", str(tmp_path / "out.blend"), "--texture-dir", str(tmp_path / "textures"),
                        cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = files_under(tmp_path / "textures")
    with Image.open(path) as png:
        recipe = json.loads(png.text["latent_textures"])
    assert recipe["object_method"] == "SEQUENTIAL" and recipe["color_match"] == "HISTOGRAM"
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--color-match", "reinhard",
                        "--out", str(tmp_path / "a.blend"), cwd=tmp_path)
    assert done.returncode == 2 and "--color-match needs --target OBJECT" in done.stderr
    done = run_launcher("generate", "--blend", str(uv_blend), "--objects", "Crate", "--prompt", "oak",
                        "--model", str(tiny_model), *FAST, "--target", "object", "--color-match", "mkl",
                        "--out", str(tmp_path / "b.blend"), cwd=tmp_path)
    assert done.returncode == 2 and "--color-match" in done.stderr
