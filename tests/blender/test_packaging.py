"""The manifest validates and the zip a user downloads installs and enables in a fresh Blender."""

import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from harness import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
from tools import build_extension  # noqa: E402


def test_manifest_validates():
    assert build_extension.validate(REPO_ROOT).startswith("Success parsing TOML")


def test_an_invalid_manifest_is_refused(tmp_path):
    """The validator really checks: a tagline ending in punctuation is refused."""
    manifest = (REPO_ROOT / "blender_manifest.toml").read_text()
    broken = manifest.replace("inside Blender\"", "inside Blender.\"", 1)
    assert broken != manifest
    (tmp_path / "blender_manifest.toml").write_text(broken)
    with pytest.raises(RuntimeError, match="tagline"):
        build_extension.validate(tmp_path)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    return build_extension.build(tmp_path_factory.mktemp("dist"))


def test_zip_contents(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    for package in ("engine/", "bridge/", "geometry/"):
        assert any(n.startswith(package) for n in names), package
    for excluded in ("tests/", "tools/", "bench/", ".venv", "Makefile", "__pycache__"):
        assert not any(excluded in n for n in names), excluded


INSTALL_SCRIPT = textwrap.dedent(
    """
    import os, sys, tempfile
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
    import bpy
    repo_dir = tempfile.mkdtemp()
    repo = bpy.context.preferences.extensions.repos.new(
        name="fresh", module="fresh", custom_directory=repo_dir, source="USER")
    result = bpy.ops.extensions.package_install_files(
        filepath={zip!r}, repo="fresh", enable_on_install=True)
    assert result == {{"FINISHED"}}, result
    assert "bl_ext.fresh.latent_textures" in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
    assert os.path.isfile(os.path.join(repo_dir, "latent_textures", "blender_manifest.toml"))
    scene = bpy.context.scene
    assert scene.latent_textures.target == "MATERIAL"
    assert hasattr(bpy.types, "LATENT_TEXTURES_OT_generate")
    heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers")]
    assert not heavy, heavy
    print("INSTALLED_OK")
    """
)


def test_zip_installs_and_enables_in_a_fresh_blender(built_zip):
    completed = subprocess.run(
        [sys.executable, "-c", INSTALL_SCRIPT.format(zip=str(built_zip))],
        capture_output=True, text=True, timeout=180,
    )
    assert "INSTALLED_OK" in completed.stdout, completed.stdout[-2000:] + completed.stderr[-3000:]
