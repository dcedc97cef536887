"""geometry.grid: views tiled into grid images and cut back (object_method GRID), at the model's own scale."""

import numpy as np
import pytest

from engine.families import native_size, smallest_grid_cell
from geometry.grid import MAX_CELLS, exact_shape, grid_shape, plan_grids, tile, untile

FAMILIES = [("SD1", "epsilon"), ("SD2", "epsilon"), ("SD2", "v_prediction"), ("SDXL", "epsilon")]


@pytest.mark.parametrize("count, shape", [(1, (1, 1)), (2, (1, 2)), (4, (2, 2)), (5, (2, 3)), (6, (2, 3)),
                                          (8, (3, 3)), (16, (4, 4))])
def test_the_grid_is_as_square_as_the_count_allows(count, shape):
    assert grid_shape(count) == shape


def test_tile_and_untile_round_trip_in_order():
    rng = np.random.default_rng(0)
    views = [rng.random((24, 40, 3)).astype(np.float32) for _ in range(5)]
    grid = tile(views, fill=0.5)
    assert grid.shape == (48, 120, 3)
    np.testing.assert_array_equal(grid[24:, 80:], 0.5)  # the sixth cell is empty
    np.testing.assert_array_equal(grid[24:48, 0:40], views[3])  # row by row
    for original, back in zip(views, untile(grid, 5)):
        np.testing.assert_array_equal(original, back)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="count"):
        grid_shape(0)
    with pytest.raises(ValueError, match="shape"):
        tile([np.zeros((8, 8, 3)), np.zeros((8, 16, 3))])
    with pytest.raises(ValueError, match="equal cells"):
        untile(np.zeros((9, 16, 3)), 4)


@pytest.mark.parametrize("count, shape", [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (6, (2, 3)),
                                          (7, (1, 7)), (12, (3, 4)), (16, (4, 4))])
def test_the_exact_shape_has_no_blank_cell(count, shape):
    assert exact_shape(count) == shape


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("count, groups, scale", [(6, [3, 3], 3), (9, [3, 3, 3], 3), (16, [4, 4, 4, 4], 4)])
def test_grids_of_6_9_16_views_stay_at_the_families_native_area(family, count, groups, scale):
    """Width x Height at the family's native size (what Use Recommended Settings sets): every grid generation
    keeps that area, at most four cells, no blank cell, cells the family can still draw."""
    side = native_size(*family)
    plan = plan_grids(count, side, side)
    assert [len(group) for group in plan.groups] == groups
    assert [index for group in plan.groups for index in group] == list(range(count))  # every view once, in order
    expected = int(side / scale ** 0.5 / 8 + 0.5) * 8
    assert plan.cell == (expected, expected)
    assert min(plan.cell) >= smallest_grid_cell(*family)
    for group in range(len(plan.groups)):
        rows, columns = plan.shape(group)
        assert rows * columns == len(plan.groups[group])  # no blank cell
        width, height = plan.size(group)
        assert abs(width * height / side ** 2 - 1) < 0.03


def test_the_cells_at_sd_15s_native_size():
    """6 views (the default) at 512 x 512: two grids of 3 cells of 296 px (one grid of 6 would be 208 px
    cells, under the 256 px SD 1.5 draws from); 4 views: one 512 x 512 grid of 256 px cells."""
    plan = plan_grids(6, 512, 512)
    assert plan.cell == (296, 296) and [plan.size(k) for k in (0, 1)] == [(888, 296), (888, 296)]
    assert plan.recipe() == {"cell": [296, 296], "generations": [[1, 2, 3], [4, 5, 6]]}
    assert plan_grids(4, 512, 512).cell == (256, 256) and plan_grids(1, 512, 512).cell == (512, 512)
    assert smallest_grid_cell("SD1") == 256 and smallest_grid_cell("SDXL") == 512


@pytest.mark.parametrize("count", range(1, 17))
def test_every_count_is_split_evenly_without_blank_cells(count):
    plan = plan_grids(count, 768, 512)
    sizes = [len(group) for group in plan.groups]
    assert max(sizes) <= MAX_CELLS and max(sizes) - min(sizes) <= 1 and sum(sizes) == count
    assert len(sizes) == -(-count // MAX_CELLS)  # as few grids as four cells a grid allow
    width, height = plan.cell
    assert abs(width / height - 1.5) < 0.1  # the views keep the aspect of Width x Height
    largest = plan.size(0)
    assert largest[0] * largest[1] <= 768 * 512 * 1.05


def test_tile_and_untile_with_an_exact_layout():
    rng = np.random.default_rng(1)
    views = [rng.random((16, 24, 3)).astype(np.float32) for _ in range(3)]
    grid = tile(views, layout=(1, 3))
    assert grid.shape == (16, 72, 3)
    for original, back in zip(views, untile(grid, 3, (1, 3))):
        np.testing.assert_array_equal(original, back)
    with pytest.raises(ValueError, match="do not fit"):
        tile(views, layout=(1, 2))


def test_no_grid_side_under_the_engines_smallest_size():
    """The engine generates 64 px and up: at tiny sizes the cells shrink only as far as that allows."""
    assert plan_grids(3, 64, 64, smallest=64).cell == (64, 64)  # 192 x 64: not 120 x 40
    assert plan_grids(5, 64, 64, smallest=64).cell == (64, 64)
    plan = plan_grids(6, 128, 128, smallest=64)
    assert plan.cell == (72, 72) and plan.size(0) == (216, 72)
    assert plan_grids(16, 128, 128, smallest=64).cell == (64, 64)
    for count in range(1, 17):
        plan = plan_grids(count, 96, 64, smallest=64)
        assert all(min(plan.size(k)) >= 64 for k in range(len(plan.groups)))
