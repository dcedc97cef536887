"""Contract scheduler names -> diffusers schedulers, built from the model's own scheduler config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# name -> (class, overrides). Overrides pin what makes the name mean what it says,
# whatever the model's own scheduler was; everything else (betas, prediction type,
# timestep spacing, ...) comes from the model's config.
_SCHEDULERS: dict[str, tuple[Any, dict[str, Any]]] = {  # (a SchedulerMixin subclass, overrides)
    "DPM_SOLVER_MULTISTEP": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "DPM_SOLVER_MULTISTEP_KARRAS": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DDIM": (DDIMScheduler, {}),
    "EULER": (EulerDiscreteScheduler, {"use_karras_sigmas": False}),
    "EULER_ANCESTRAL": (EulerAncestralDiscreteScheduler, {}),
    "PNDM": (PNDMScheduler, {"skip_prk_steps": True}),
    "LCM": (LCMScheduler, {}),
    "UNIPC": (UniPCMultistepScheduler, {}),
}


def make_scheduler(name: str, model_config: Mapping[str, Any], steps: int | None = None) -> SchedulerMixin:
    """A fresh scheduler for one run (schedulers keep per-run state).

    Args:
        name: one of ``request.SCHEDULERS``.
        model_config: the scheduler config the model shipped with.
        steps: the run's step count, checked against what the scheduler can do.

    Raises:
        ValueError: an unknown name, or more LCM steps than its original schedule has.
    """
    try:
        cls, overrides = _SCHEDULERS[name]
    except KeyError:
        raise ValueError(f"scheduler must be one of {', '.join(_SCHEDULERS)}; got {name!r}.") from None
    scheduler: SchedulerMixin = cls.from_config(model_config, **overrides)
    # LCM picks its steps from a fixed "original" schedule (50 steps unless the model says otherwise).
    original = getattr(scheduler.config, "original_inference_steps", None)  # type: ignore[attr-defined]
    if steps is not None and original is not None and steps > original:
        raise ValueError(f"steps must be at most {original} with the LCM scheduler; got {steps}.")
    return scheduler
