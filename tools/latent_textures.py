"""Run the ``latent_textures`` Blender command in this repository's bpy-module environment.

There is no ``blender`` binary here, and the bpy module has no ``--command``
dispatcher, so this launcher does what Blender does: imports bpy, loads this
checkout as an extension (``bl_ext.<repo>.latent_textures``, through an
extension repository, like an installed extension) and calls the command
function the extension registered, with the same arguments::

    .venv/bin/python tools/latent_textures.py generate --prompt "red brick wall" --model PATH --out out/wall.blend
    .venv/bin/python tools/latent_textures.py generate --help
    .venv/bin/python tools/latent_textures.py models

is the same as ``blender --command latent_textures generate ...`` in Blender 4.2+.
The exit status is the command's.

Launcher options (before the command):
  --user-resources DIR  Blender's user resources folder (config, extensions). Default:
                        $BLENDER_USER_RESOURCES when set, else a temporary folder removed
                        at exit, so your own Blender setup is never touched.
  --offline-mode        forbid downloads, like Blender's --offline-mode (also: HF_HUB_OFFLINE=1)
  --online-mode         allow downloads (default), like Blender's --online-mode

With the temporary user folder, the model cache is the Hugging Face cache
(HF_HUB_CACHE, default ~/.cache/huggingface/hub), so downloads persist between
runs and models other tools downloaded are found; --model-cache DIR overrides it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
from pathlib import Path

LAUNCHER_REPO_MODULE = "lt_launcher"
PROG = "python tools/latent_textures.py"


def _extension_loader():
    spec = importlib.util.spec_from_file_location(
        "lt_extension_loader", Path(__file__).resolve().parent / "extension_loader.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_launcher_options(argv: list[str]) -> tuple[dict, list[str]]:
    """Leading launcher options -> (options, the command's arguments, untouched)."""
    options = {"user_resources": None, "online": None}
    rest = list(argv)
    while rest:
        arg = rest[0]
        if arg == "--offline-mode":
            options["online"] = False
        elif arg == "--online-mode":
            options["online"] = True
        elif arg == "--user-resources" and len(rest) > 1:
            options["user_resources"] = rest[1]
            rest.pop(0)
        elif arg.startswith("--user-resources="):
            options["user_resources"] = arg.split("=", 1)[1]
        else:
            break
        rest.pop(0)
    return options, rest


def start(*, user_resources: str | None = None, online: bool | None = None):
    """Import bpy with (isolated) user resources, load the extension, set online access; returns its ``cli`` module."""
    loader = _extension_loader()
    isolated = user_resources is None and not os.environ.get("BLENDER_USER_RESOURCES")
    if isolated:
        folder = loader.isolate_user_resources()
        atexit.register(shutil.rmtree, folder, True)  # registered before bpy's handlers: runs after them
    elif user_resources is not None:
        loader.isolate_user_resources(os.path.abspath(os.path.expanduser(user_resources)))
    repo_dir = loader.make_extension_repo()
    atexit.register(loader.remove_extension_repo, repo_dir)

    import bpy

    if online is None:
        online = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() not in ("1", "ON", "YES", "TRUE")
    bpy.context.preferences.system.use_online_access = online
    package = loader.load_extension(LAUNCHER_REPO_MODULE, repo_dir)
    if isolated:
        # A throw-away user folder would throw the downloads away too: use the Hugging Face cache.
        from huggingface_hub import constants

        prefs = bpy.context.preferences.addons[package.__name__].preferences
        prefs.model_cache_dir = constants.HF_HUB_CACHE
    return sys.modules[f"{package.__name__}.cli"]


def run(argv: list[str]) -> int:
    options, command_argv = split_launcher_options(argv)
    cli = start(**options)
    return cli.main(command_argv, prog=PROG)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
