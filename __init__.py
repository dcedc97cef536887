"""Latent Textures: generative texturing with a diffusion model running inside Blender.

This file only orders registration. Heavy modules (torch, diffusers) are
imported on the first Generate, never here.
"""

from . import cli, operators, panels, preferences, properties

_modules = (preferences, properties, operators, panels, cli)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
