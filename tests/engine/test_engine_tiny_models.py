"""tools/tiny_models.py: quick, deterministic, loadable through the real loaders."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("builder", ["build_tiny_sd", "build_tiny_sdxl", "build_tiny_single_file"])
def test_builders_are_quick_and_deterministic(tiny_models: Any, tmp_path: Path, builder: str) -> None:
    build = getattr(tiny_models, builder)
    build(tmp_path / "warm-up")  # first call pays for imports
    start = time.perf_counter()
    first = build(tmp_path / "a", seed=3)
    elapsed = time.perf_counter() - start
    second = build(tmp_path / "b", seed=3)
    other = build(tmp_path / "c", seed=4)
    root = lambda p: p if p.is_dir() else p.parent  # noqa: E731
    assert _digest(root(first)) == _digest(root(second))
    assert _digest(root(first)) != _digest(root(other))
    assert elapsed < 2.0 * 3  # < 2 s on an idle 2-core machine; slack for a busy one


def test_tiny_sd_looks_like_sd(tiny_sd_model: Path, tiny_sd2_v_model: Path) -> None:
    import json

    index = json.loads((tiny_sd_model / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    vae = json.loads((tiny_sd_model / "vae" / "config.json").read_text())
    assert 2 ** (len(vae["block_out_channels"]) - 1) == 8  # vae_scale_factor like real SD
    scheduler = json.loads((tiny_sd2_v_model / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction"
    assert json.loads((tiny_sd2_v_model / "unet" / "config.json").read_text())["use_linear_projection"] is True


def test_cli_writes_a_model(tiny_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tiny_models.main([str(tmp_path / "xl"), "--sdxl"]) == 0
    assert (tmp_path / "xl" / "model_index.json").is_file()
    assert capsys.readouterr().out.strip() == str(tmp_path / "xl")
