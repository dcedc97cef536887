"""geometry.uv_raster: which texel shows which surface point (no Blender)."""

import numpy as np
import pytest

from geometry.uv_raster import _expanded_index, rasterize_uv_triangles


def _quad(uv_low, uv_high, z=0.0):
    """Two triangles of a unit square in the plane z, UV-mapped onto [uv_low, uv_high]^2, world = (u', v', z)."""
    (u0, v0), (u1, v1) = uv_low, uv_high
    uv = np.array([[[u0, v0], [u1, v0], [u1, v1]], [[u0, v0], [u1, v1], [u0, v1]]], dtype=np.float64)
    scale = np.array([1.0 / (u1 - u0), 1.0 / (v1 - v0)])
    xy = (uv - [u0, v0]) * scale
    positions = np.concatenate([xy, np.full((2, 3, 1), z)], axis=2)
    normals = np.tile([0.0, 0.0, 1.0], (2, 3, 1))
    return uv, positions, normals


def test_positions_are_the_affine_map_of_each_texel_centre():
    uv, positions, normals = _quad((0.25, 0.125), (0.75, 0.875), z=2.0)
    size = 64
    texels = rasterize_uv_triangles(uv, positions, normals, size)
    rows, columns = np.divmod(texels.index, size)
    u = (columns + 0.5) / size
    v = (size - 1 - rows + 0.5) / size  # top row first: the last row is v near 0
    expected_x = (u - 0.25) / 0.5
    expected_y = (v - 0.125) / 0.75
    np.testing.assert_allclose(texels.world_position[:, 0], expected_x, atol=1e-6)
    np.testing.assert_allclose(texels.world_position[:, 1], expected_y, atol=1e-6)
    np.testing.assert_allclose(texels.world_position[:, 2], 2.0)
    # exactly the texel centres inside [0.25, 0.75] x [0.125, 0.875]: 32 x 48
    assert len(texels.index) == 32 * 48
    assert texels.mask[size - 1 - 8 - 47 : size - 8, 16:48].all()
    assert texels.shared == 0


def test_normals_interpolate_and_are_unit_length():
    uv = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    positions = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], dtype=np.float64)
    normals = np.array([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]])
    texels = rasterize_uv_triangles(uv, positions, normals, 32)
    np.testing.assert_allclose(np.linalg.norm(texels.normal, axis=1), 1.0, atol=1e-6)
    # the normal's direction is the barycentric mix: its components are proportional to (w0, w1, w2)
    w1, w2 = texels.world_position[:, 0], texels.world_position[:, 1]
    weights = np.stack([1 - w1 - w2, w1, w2], axis=1)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    np.testing.assert_allclose(texels.normal, weights, atol=1e-5)


def test_shared_edges_leave_no_hole_and_count_no_overlap():
    rng = np.random.default_rng(3)
    # a 5x5 grid of quads with jittered interior vertices: every texel centre inside the unit square is covered once
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 6), np.linspace(0, 1, 6), indexing="ij"), axis=-1)
    grid[1:-1, 1:-1] += rng.uniform(-0.05, 0.05, size=(4, 4, 2))
    a, b, c, d = grid[:-1, :-1], grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]
    uv = np.concatenate([np.stack([a, b, c], axis=2), np.stack([a, c, d], axis=2)]).reshape(-1, 3, 2)
    positions = np.concatenate([uv, np.zeros(uv.shape[:2] + (1,))], axis=2)
    texels = rasterize_uv_triangles(uv, positions, np.tile([0.0, 0, 1], uv.shape[:2] + (1,)), 100)
    assert texels.mask.all()
    assert texels.shared == 0
    rows, columns = np.divmod(texels.index, 100)
    np.testing.assert_allclose(texels.world_position[:, 0], (columns + 0.5) / 100, atol=1e-5)


def test_overlapping_islands_are_counted():
    uv, positions, normals = _quad((0.0, 0.0), (0.5, 0.5))
    mirrored = uv.copy()
    texels = rasterize_uv_triangles(np.concatenate([uv, mirrored]), np.concatenate([positions, -positions]),
                                    np.concatenate([normals, normals]), 16)
    assert len(texels.index) == 64
    assert texels.shared > 40  # all but the texels on the diagonal edge


@pytest.mark.parametrize("bad", ["uv", "positions", "size"])
def test_bad_input_names_the_argument(bad):
    uv, positions, normals = _quad((0, 0), (1, 1))
    kwargs = {"uv": uv, "positions": positions, "normals": normals, "size": 8}
    kwargs[bad] = {"uv": uv[..., :1], "positions": positions[:1], "size": 0}[bad]
    with pytest.raises(ValueError, match=bad):
        rasterize_uv_triangles(**kwargs)


def test_spans_expand_to_texels_as_np_repeat_would():
    """The texels' span index: np.repeat's result, built so that the worker releases the GIL (issue 23)."""
    counts = np.array([1, 3, 1, 7, 2])
    np.testing.assert_array_equal(_expanded_index(counts), np.repeat(np.arange(5), counts))
    assert _expanded_index(np.array([], dtype=np.int64)).shape == (0,)
