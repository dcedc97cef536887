"""``--reference FILE|IMAGE[:STRENGTH]``, parsed: pure (standard library only), so it is tested without Blender."""

from __future__ import annotations

REFERENCE_STRENGTH_SEPARATOR = ":"


def parse_reference(text: str) -> tuple[str, float | None]:
    """``--reference FILE|IMAGE[:STRENGTH]`` -> (the file or image name, the strength or None).

    The strength is what follows the last ``:`` when it reads as a number from 0 to 1; anything else stays part
    of the name, so ``C:\\textures\\wall.png`` is a path and ``C:\\textures\\wall.png:0.4`` that path at 0.4.
    """
    source, separator, tail = text.rpartition(REFERENCE_STRENGTH_SEPARATOR)
    if separator:
        try:
            strength = float(tail)
        except ValueError:
            strength = None
        if strength is not None and 0.0 <= strength <= 1.0:  # NaN fails both comparisons
            return source.strip(), strength
    return text.strip(), None
