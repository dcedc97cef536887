"""The engine's Python packages and models: what to install, installing it, and saying what is there.

Nothing here runs when the add-on is enabled. The packages live in the
add-on's user folder (``bpy.utils.extension_path_user(<add-on>, "site-packages")``)
and reach ``sys.path`` through ``activate`` only, right before the engine is
first imported.

This ``__init__`` imports nothing heavy and nothing from bpy. Every module but
``blender.py`` (the bpy glue) is plain Python; ``probe_worker.py`` and
``download_worker.py`` are scripts that run in a child Python, never in Blender.
"""

from __future__ import annotations

import importlib
import os
import sys


def activate(folder: str | os.PathLike[str]) -> bool:
    """Put the installed engine packages first on ``sys.path``, once. THE one place the add-on changes ``sys.path``.

    Call it on the main thread right before the engine (torch, diffusers…) is
    first imported, i.e. before ``engine.get_engine(...)``; calling it again is
    free. First, not last: the pinned, tested versions must win over anything
    older that Blender's Python might also see (a user site-packages folder,
    another add-on's copy). Modules Blender already imported (numpy) stay as
    they are.

    Returns True when ``folder`` is on ``sys.path`` afterwards, False when it does
    not exist (nothing installed yet: the engine then imports whatever Blender's
    own Python has, e.g. a developer's venv). A swap that was interrupted
    between its two renames (Blender killed mid-install) is completed first.
    """
    from .install import recover_interrupted_swap

    path = os.path.abspath(os.fspath(folder))
    recover_interrupted_swap(path)
    if not os.path.isdir(path):
        return False
    if path not in sys.path:
        sys.path.insert(0, path)
        importlib.invalidate_caches()
    return True


def is_active(folder: str | os.PathLike[str]) -> bool:
    """Whether ``activate(folder)`` has put the folder on ``sys.path``."""
    return os.path.abspath(os.fspath(folder)) in sys.path
