"""The engine's light surface: request validation, options, imports that stay cheap, no bpy."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = REPO_ROOT / "engine"
# Modules that must import without torch/diffusers/transformers/huggingface_hub.
LIGHT_MODULES = ("__init__.py", "request.py", "errors.py", "_version.py", "families.py", "models.py", "control.py")


class _Lora(tuple):
    """A LoraSpec to make once the engine is imported (the parameter lists are built before)."""


def _request(engine_api: Any, **fields: Any) -> Any:
    values: dict[str, Any] = {"prompt": "moss", "model": "org/name", "width": 64, "height": 64}
    values.update(fields)
    if isinstance(values.get("loras"), (tuple, list)):
        made = [engine_api.LoraSpec(*x) if isinstance(x, _Lora) else x for x in values["loras"]]
        values["loras"] = made if isinstance(values["loras"], list) else tuple(made)
    return engine_api.GenerationRequest(**values)


def _case_id(fields: dict) -> str:
    return ",".join(f"{k}={type(v).__name__ if isinstance(v, np.ndarray | list) else v!r}" for k, v in fields.items())


def _init(h: int = 64, w: int = 64, c: int = 3, dtype: Any = np.float32) -> np.ndarray:
    return np.full((h, w, c), 0.5, dtype=dtype)


def _mask(h: int = 64, w: int = 64, dtype: Any = np.float32, value: float = 1.0) -> np.ndarray:
    mask = np.zeros((h, w), dtype=dtype)
    mask[h // 4 : h // 2, w // 4 : w // 2] = value
    return mask


def _lora(source: str, weight: float = 1.0) -> _Lora:
    return _Lora((source, weight))


# (fields, words the message must contain): one case per rule of every field.
INVALID = [
    ({"prompt": None}, ["prompt", "string"]),
    ({"negative_prompt": 3}, ["negative_prompt", "string"]),
    ({"model": ""}, ["model"]),
    ({"model": "   "}, ["model"]),
    ({"mode": "OUTPAINT"}, ["mode", "TXT2IMG", "IMG2IMG", "INPAINT"]),
    ({"width": 100}, ["width", "multiple of 8", "64", "4096"]),
    ({"width": 56}, ["width", "64", "4096"]),
    ({"width": 4104}, ["width", "64", "4096"]),
    ({"width": 64.0}, ["width"]),
    ({"width": True}, ["width"]),
    ({"height": 0}, ["height", "64", "4096"]),
    ({"height": 516}, ["height", "multiple of 8"]),
    ({"height": 8192}, ["height", "4096"]),
    ({"steps": 0}, ["steps", "1", "1000"]),
    ({"steps": 1001}, ["steps", "1000"]),
    ({"steps": 2.5}, ["steps"]),
    ({"guidance_scale": -0.1}, ["guidance_scale", "0", "30"]),
    ({"guidance_scale": 30.5}, ["guidance_scale", "30"]),
    ({"guidance_scale": math.nan}, ["guidance_scale"]),
    ({"guidance_scale": "7"}, ["guidance_scale"]),
    ({"strength": 0.0}, ["strength", "(0, 1]"]),
    ({"strength": 1.5}, ["strength", "(0, 1]"]),
    ({"strength": math.nan}, ["strength"]),
    ({"scheduler": "KARRAS"}, ["scheduler", "DPM_SOLVER_MULTISTEP", "UNIPC"]),
    ({"seed": -1}, ["seed", "2147483647"]),
    ({"seed": 2**31}, ["seed", "2147483647"]),
    ({"seed": 1.5}, ["seed"]),
    ({"seamless": "XY"}, ["seamless", "NONE", "BOTH"]),
    ({"mode": "IMG2IMG"}, ["init_image", "required"]),
    ({"mode": "IMG2IMG", "init_image": [[0.5]]}, ["init_image", "list"]),
    ({"mode": "IMG2IMG", "init_image": _init(dtype=np.float64)}, ["init_image", "float64"]),
    ({"mode": "IMG2IMG", "init_image": _init(64, 64, 2)}, ["init_image", "shape"]),
    ({"mode": "IMG2IMG", "init_image": np.zeros((64, 64), np.float32)}, ["init_image", "shape"]),
    ({"mode": "IMG2IMG", "width": 128, "init_image": _init(64, 64)}, ["init_image", "(64, 128"]),
    ({"mode": "IMG2IMG", "init_image": _init() + 0.75}, ["init_image", "0..1"]),
    ({"mode": "IMG2IMG", "init_image": np.full((64, 64, 3), np.nan, np.float32)}, ["init_image", "NaN"]),
    ({"mode": "IMG2IMG", "init_image": _init(), "steps": 4, "strength": 0.2}, ["strength", "steps"]),
    ({"mode": "INPAINT", "mask_image": _mask()}, ["init_image", "required", "INPAINT"]),
    ({"mode": "INPAINT", "init_image": _init()}, ["mask_image", "required", "INPAINT"]),
    ({"mode": "INPAINT", "init_image": _init(), "mask_image": _mask(32, 64)}, ["mask_image", "(64, 64)", "shape"]),
    ({"mode": "INPAINT", "init_image": _init(), "mask_image": _init()}, ["mask_image", "shape"]),
    ({"mode": "INPAINT", "init_image": _init(), "mask_image": _mask(dtype=np.uint8)}, ["mask_image", "uint8"]),
    ({"mode": "INPAINT", "init_image": _init(), "mask_image": _mask() * 2}, ["mask_image", "0..1"]),
    ({"mode": "INPAINT", "init_image": _init(), "mask_image": _mask(value=0.0)}, ["mask_image", "empty"]),
    ({"mask_blur": -1}, ["mask_blur", "0"]),
    ({"mask_blur": 1.5}, ["mask_blur"]),
    ({"control": "CANNY"}, ["control", "NONE", "DEPTH", "NORMAL"]),
    ({"control": "DEPTH"}, ["control_image", "required", "DEPTH"]),
    ({"control": "NORMAL", "control_image": _init(64, 64, 4)}, ["control_image", "shape"]),
    ({"control": "DEPTH", "control_image": _init(32, 64)}, ["control_image", "(64, 64, 3)"]),
    ({"control": "DEPTH", "control_image": _init() - 1}, ["control_image", "0..1"]),
    ({"control_strength": -0.1}, ["control_strength", "0", "2"]),
    ({"control_strength": 2.5}, ["control_strength", "2"]),
    ({"control_strength": math.nan}, ["control_strength"]),
    ({"control_model": None}, ["control_model"]),
    ({"loras": "style.safetensors"}, ["loras", "LoraSpec"]),
    ({"loras": ("style.safetensors",)}, ["loras[0]", "LoraSpec"]),
    ({"loras": (_lora(""),)}, ["loras[0].source"]),
    ({"loras": (_lora("a/b", 2.5),)}, ["loras[0].weight", "-2", "2"]),
    ({"loras": (_lora("a/b"), _lora("a/b", 0.5))}, ["loras[1].source", "twice"]),
]


@pytest.mark.parametrize(("fields", "words"), INVALID, ids=[_case_id(f) for f, _ in INVALID])
def test_every_invalid_field_raises_a_value_error_that_names_it(engine_api: Any, fields: dict, words: list) -> None:
    with pytest.raises(ValueError) as raised:
        _request(engine_api, **fields).validate()
    for word in words:
        assert word in str(raised.value), f"{word!r} not in {raised.value}"


VALID = [
    {},
    {"width": 64, "height": 4096},
    {"width": 4096, "height": 64},
    {"steps": 1},
    {"steps": 1000},
    {"guidance_scale": 0},
    {"guidance_scale": 30},
    {"strength": 1.0},
    {"seed": 0},
    {"seed": 2**31 - 1},
    {"seed": np.int64(5)},
    {"negative_prompt": "blurry", "seamless": "BOTH", "scheduler": "LCM"},
    {"mode": "IMG2IMG", "init_image": _init(64, 64, 4), "width": 64, "height": 64},
    {"mode": "IMG2IMG", "init_image": _init(64, 128), "width": 128, "height": 64, "steps": 4, "strength": 0.25},
    {"mode": "TXT2IMG", "init_image": _init(8, 8)},  # ignored outside IMG2IMG
    {"mode": "INPAINT", "init_image": _init(), "mask_image": _mask(), "mask_blur": 4},
    {"mode": "INPAINT", "init_image": _init(), "mask_image": np.ones((64, 64), np.float32), "strength": 1.0},
    {"mode": "TXT2IMG", "mask_image": _mask(8, 8)},  # ignored outside INPAINT
    {"control": "DEPTH", "control_image": _init(), "control_strength": 0.0},
    {"control": "NORMAL", "control_image": _init(), "control_strength": 2, "control_model": "org/cn"},
    {"control": "NONE", "control_image": _init(8, 8)},  # ignored without control
    {"loras": (_lora("a/b", -2), _lora("style.safetensors", 2.0))},
    {"loras": [_lora("a/b", 0)]},
]


@pytest.mark.parametrize("fields", VALID, ids=[_case_id(f) or "defaults" for f in VALID])
def test_valid_requests_pass(engine_api: Any, fields: dict) -> None:
    _request(engine_api, **fields).validate()


def test_contract_constants(engine_api: Any) -> None:
    assert engine_api.MODES == ("TXT2IMG", "IMG2IMG", "INPAINT")
    assert engine_api.CONTROLS == ("NONE", "DEPTH", "NORMAL", "TILE")
    assert engine_api.SCHEDULERS == (
        "DPM_SOLVER_MULTISTEP",
        "DPM_SOLVER_MULTISTEP_KARRAS",
        "DDIM",
        "EULER",
        "EULER_ANCESTRAL",
        "PNDM",
        "LCM",
        "UNIPC",
    )
    assert engine_api.SEAMLESS_AXES == ("NONE", "X", "Y", "BOTH")
    assert (engine_api.MIN_SIZE, engine_api.MAX_SIZE, engine_api.MAX_SEED) == (64, 4096, 2**31 - 1)
    request = engine_api.GenerationRequest(prompt="p", model="m")
    assert (request.width, request.height, request.steps, request.guidance_scale) == (512, 512, 25, 7.5)
    assert (request.mode, request.scheduler, request.seed, request.seamless, request.strength) == (
        "TXT2IMG",
        "DPM_SOLVER_MULTISTEP",
        None,
        "NONE",
        0.6,
    )


@pytest.mark.parametrize(
    ("fields", "word"),
    [({"device": "GPU"}, "device"), ({"precision": "FP8"}, "precision"), ({"vae_tiling": "MAYBE"}, "vae_tiling")],
)
def test_engine_options_are_validated(engine_api: Any, fields: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        engine_api.EngineOptions(**fields).validate()
    with pytest.raises(ValueError, match=word):
        engine_api.Engine(engine_api.EngineOptions(**fields))


def test_engine_options_are_frozen_and_comparable(engine_api: Any) -> None:
    options = engine_api.EngineOptions(cache_dir="/tmp/x")
    assert options == engine_api.EngineOptions(cache_dir="/tmp/x")
    assert options != engine_api.EngineOptions(cache_dir="/tmp/y")
    assert hash(options) == hash(engine_api.EngineOptions(cache_dir="/tmp/x"))
    with pytest.raises(AttributeError):
        options.device = "CPU"  # type: ignore[misc]


def test_errors_form_one_family(engine_api: Any) -> None:
    for name in ("GenerationCancelled", "ModelNotFoundError", "UnsafeModelFormatError", "OutOfMemoryError"):
        assert issubclass(getattr(engine_api, name), engine_api.EngineError)
    assert str(engine_api.GenerationCancelled()) == "Generation cancelled."


def test_version_comes_from_the_manifest(engine_api: Any) -> None:
    manifest = REPO_ROOT / "blender_manifest.toml"
    expected = tomllib.loads(manifest.read_text())["version"] if manifest.exists() else "0.0.0"
    assert engine_api.__version__ == expected


def test_importing_the_engine_package_loads_no_heavy_module() -> None:
    """Enabling the add-on imports ``engine`` (types, errors): torch & co. must wait for the first Generate."""
    code = f"""
import importlib.machinery, importlib.util, sys
spec = importlib.machinery.ModuleSpec("latent_textures", None, is_package=True)
spec.submodule_search_locations = [{str(REPO_ROOT)!r}]
pkg = importlib.util.module_from_spec(spec); pkg.__path__ = [{str(REPO_ROOT)!r}]
sys.modules["latent_textures"] = pkg
import latent_textures.engine as engine
from latent_textures.engine import request, errors, families, models
engine.GenerationRequest(prompt="p", model="org/name").validate()
engine.EngineOptions().validate()
engine.__version__
print(sorted(m for m in ("torch", "diffusers", "transformers", "huggingface_hub", "safetensors", "bpy")
             if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(module, level) for every import in ``path`` (level > 0: relative).

    ``top_level_only``: statements at module top only (``if TYPE_CHECKING:`` bodies excluded).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[tuple[str, int]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_no_file_in_engine_imports_bpy_or_the_package_by_name() -> None:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        text = path.read_text(encoding="utf-8")
        for module, level in _imports(path):
            root = module.split(".")[0]
            if level == 0:
                assert root not in ("bpy", "mathutils", "bmesh", "gpu", "bl_ui", "addon_utils"), (
                    f"{path.name}: {module}"
                )
                assert root not in ("latent_textures", "bl_ext", "engine"), f"{path.name}: absolute import {module}"
        assert "trust_remote_code=True" not in text, path.name


def test_light_modules_import_only_stdlib_numpy_and_relatives() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    for name in LIGHT_MODULES:
        for module, level in _imports(ENGINE_DIR / name, top_level_only=True):
            assert level > 0 or module.split(".")[0] in allowed, f"{name} imports {module} at module top"
