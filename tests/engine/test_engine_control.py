"""ControlNet conditioning: the control-image conventions (engine.control) and generation through
the real diffusers ControlNet pipelines on tiny SD-1.x / SDXL models and tiny ControlNets."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def control(engine_api: Any) -> Any:
    return importlib.import_module(engine_api.__name__ + ".control")


# --- the control-image conventions (numpy only) --------------------------------------------------------


def test_encode_depth_is_normalised_inverse_depth_near_white_background_black(control: Any) -> None:
    depth = np.array([[1.0, 2.0], [4.0, np.inf]])
    image = control.encode_depth(depth)
    assert image.shape == (2, 2, 3) and image.dtype == np.float32
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    far = control.DEPTH_FAR_VALUE
    # inverse depths 1, 0.5, 0.25: nearest -> 1, farthest visible -> DEPTH_FAR_VALUE, linear in 1/z between
    expected = [[1.0, far + (1 - far) * (0.5 - 0.25) / (1 - 0.25)], [far, 0.0]]
    np.testing.assert_allclose(image[..., 0], expected, rtol=1e-6)


def test_encode_depth_visible_mask_and_a_flat_plane(control: Any) -> None:
    depth = np.full((3, 3), 5.0)
    visible = np.zeros((3, 3), bool)
    visible[1, 1] = True
    image = control.encode_depth(depth, visible)
    assert image[1, 1, 0] == 1.0 and image.sum() == 3.0  # one depth: all visible pixels white
    with pytest.raises(ValueError, match="visible"):
        control.encode_depth(depth, visible[:2])


def test_encode_normals_follows_normalbae_left_up_towards_viewer(control: Any) -> None:
    # Blender camera space: x right, y up, z towards the viewer.
    normals = np.array([[[0, 0, 1], [1, 0, 0], [-1, 0, 0]], [[0, 1, 0], [0, 0, 0], [0, 0, 2]]], float)
    image = control.encode_normals(normals)
    assert image.dtype == np.float32 and image.shape == (2, 3, 3)
    np.testing.assert_allclose(image[0, 0], [0.5, 0.5, 1.0])  # facing the camera: (128, 128, 255)
    np.testing.assert_allclose(image[0, 1], [0.0, 0.5, 0.5])  # facing right: no red
    np.testing.assert_allclose(image[0, 2], [1.0, 0.5, 0.5])  # facing left: red
    np.testing.assert_allclose(image[1, 0], [0.5, 1.0, 0.5])  # facing up: green
    np.testing.assert_allclose(image[1, 1], control.BACKGROUND_NORMAL)  # no normal: background
    np.testing.assert_allclose(image[1, 2], [0.5, 0.5, 1.0])  # normalised
    hidden = control.encode_normals(normals, np.zeros((2, 3), bool))
    np.testing.assert_allclose(hidden, np.broadcast_to(control.BACKGROUND_NORMAL, (2, 3, 3)))


def test_defaults_name_real_models_and_the_missing_ones_say_why(control: Any) -> None:
    assert control.default_control_model("SD1", "DEPTH") == "lllyasviel/control_v11f1p_sd15_depth"
    assert control.default_control_model("SD1", "NORMAL") == "lllyasviel/control_v11p_sd15_normalbae"
    assert control.default_control_model("SDXL", "DEPTH") == "diffusers/controlnet-depth-sdxl-1.0"
    assert control.default_control_model("SDXL", "NORMAL") is None
    assert "control_model" in control.no_default_reason("SDXL", "NORMAL")
