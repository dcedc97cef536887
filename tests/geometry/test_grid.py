"""geometry.grid: views tiled into one image and cut back (object_method GRID)."""

import numpy as np
import pytest

from geometry.grid import grid_shape, tile, untile


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
