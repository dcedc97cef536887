"""Fixtures of the command-line tests: everything runs the launcher as a user would, in a subprocess.

Each subprocess gets isolated Blender user resources (the launcher's default),
an empty Hugging Face cache and ``HF_HUB_OFFLINE=1``: no test touches the
network or the developer's own Blender setup or model cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_harness import (
    INSPECT_SCRIPT, LAUNCHER, REPO_ROOT, SCENE_SCRIPT, TIMEOUT, load_by_path, run_script, subprocess_env,
)


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory) -> Path:
    """The subprocesses' Hugging Face cache (HF_HUB_CACHE): the launcher's default model cache."""
    return tmp_path_factory.mktemp("hf_cache")


@pytest.fixture(scope="session")
def env(hf_cache) -> dict[str, str]:
    return subprocess_env(hf_cache)


@pytest.fixture(scope="session")
def run_launcher(env):
    """``run_launcher(*args, cwd=...)``: ``python tools/latent_textures.py ARGS`` as a user types it."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(LAUNCHER), *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)

    return run


@pytest.fixture(scope="session")
def inspect_blend(env):
    """A saved .blend's images (with recipes) and the images on each mesh's materials, read by plain bpy."""

    def inspect(path: Path) -> dict:
        done = run_script(INSPECT_SCRIPT, str(path), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        line = next(line for line in done.stdout.splitlines() if line.startswith("INSPECT "))
        return json.loads(line[len("INSPECT "):])

    return inspect


@pytest.fixture(scope="session")
def scene_blend(tmp_path_factory, env) -> Path:
    """A saved scene: meshes 'Crate' and 'Barrel' (with UVs), a lamp and a camera; nothing selected."""
    path = tmp_path_factory.mktemp("scenes") / "props.blend"
    done = run_script(SCENE_SCRIPT, str(path), env=env)
    assert done.returncode == 0 and path.is_file(), done.stderr[-3000:]
    return path


@pytest.fixture(scope="session")
def tiny_models_module():
    return load_by_path("lt_cli_tiny_models", REPO_ROOT / "tools" / "tiny_models.py")


@pytest.fixture(scope="session")
def tiny_model(request, tmp_path_factory, tiny_models_module) -> Path:
    """The session's tiny SD model: tests/conftest.py's ``tiny_sd_model`` when there is one, else built here."""
    try:
        return Path(request.getfixturevalue("tiny_sd_model"))
    except pytest.FixtureLookupError:
        return tiny_models_module.build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def cached_tiny_model(tiny_model, hf_cache, tiny_models_module) -> str:
    """The tiny model installed in the subprocesses' Hugging Face cache as if downloaded: its repo id."""
    repo_id = "latent-textures-tests/tiny-sd"
    tiny_models_module.install_in_hf_cache(tiny_model, hf_cache, repo_id)
    return repo_id
