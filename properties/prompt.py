"""The prompt: what to paint and what to steer away from."""

import bpy


class PromptSettings:
    """``prompt``, ``negative_prompt``."""

    prompt: bpy.props.StringProperty(
        name="Prompt", description="What to paint", default="",
    )
    negative_prompt: bpy.props.StringProperty(
        name="Negative Prompt", description="What to steer away from", default="",
    )
