"""geometry.fill: unseen texels filled across the surface in 3D; the gutter padded (no Blender)."""

import numpy as np
import pytest

from geometry.fill import fill_unseen, pad_gutter


def test_unseen_texels_take_the_colour_of_the_nearest_seen_surface_in_3d():
    # two strips of texels, far apart in the texture but meeting in 3D (a seam): x in [0, 1] at y = 0
    x = np.linspace(0.0, 1.0, 201, dtype=np.float32)
    position = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    position = np.concatenate([position, position + [0.0, 0.0, 0.001]])  # the other side of the seam
    colour = np.zeros((len(position), 3), np.float32)
    seen = np.zeros(len(position), bool)
    seen[:40] = True  # only the left end of the first strip was seen, in red
    colour[:40] = [1.0, 0.0, 0.0]
    seen[201 + 170:] = True  # and the right end of the second strip, in blue
    colour[201 + 170:] = [0.0, 0.0, 1.0]
    filled = fill_unseen(position, colour, seen, spacing=0.005)
    np.testing.assert_array_equal(filled[seen], colour[seen])
    first, second = filled[:201], filled[201:]
    # both sides of the seam agree everywhere, even where only one side was seen
    assert np.abs(first - second).max() < 0.05
    assert first[45, 0] > 0.9 and first[195, 2] > 0.9  # near each seen end: its colour
    np.testing.assert_allclose(filled.sum(axis=1), 1.0, atol=1e-5)  # blends of the two, never darker


def test_fill_unseen_refuses_when_nothing_was_seen():
    with pytest.raises(ValueError, match="seen"):
        fill_unseen(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(3, bool))
    with pytest.raises(ValueError, match="position"):
        fill_unseen(np.zeros((3, 2)), np.zeros((3, 3)), np.ones(3, bool))


def test_the_gutter_continues_the_islands_and_stays_within_their_colours():
    size = 64
    covered = np.zeros((size, size), bool)
    covered[10:30, 8:20] = True
    covered[40:60, 35:60] = True
    rng = np.random.default_rng(0)
    texture = np.where(covered[..., None], rng.uniform(0.2, 0.8, (size, size, 3)), 0.0).astype(np.float32)
    padded = pad_gutter(texture, covered)
    np.testing.assert_array_equal(padded[covered], texture[covered])
    assert (padded.reshape(-1, 3).min(axis=0) >= texture[covered].min(axis=0)).all()
    assert (padded.reshape(-1, 3).max(axis=0) <= texture[covered].max(axis=0)).all()
    # the first ring copies the island's edge texel exactly (a straight edge: one covered neighbour)
    np.testing.assert_array_equal(padded[20, 20], texture[20, 19])
    np.testing.assert_array_equal(padded[9, 12], texture[10, 12])
    with pytest.raises(ValueError, match="covered"):
        pad_gutter(texture, np.zeros((size, size), bool))
