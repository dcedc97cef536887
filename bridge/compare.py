"""``latent_textures.compare``: the scene's settings as a grid of guidance x schedulers (or step counts).

The cells run one after another on the generation worker (``CompareJob``), each an
ordinary engine request; the grid becomes one packed image (recipe ``insight="compare"``).
"""

from __future__ import annotations

import dataclasses
import secrets
import traceback
from typing import Any

import bpy

from ..engine import MAX_SEED
from ..engine.compare import GridPlan, compose, parse_numbers, parse_schedulers, plan_grid
from . import results, targets
from .insight import create_insight_image
from .job import GenerationJob, JobEvent
from .plan import Plan
from .run import GenerationRun


def plan_from_settings(context: bpy.types.Context, guidance: str, axis: str, schedulers: str, steps: str):
    """The generation plan (checked, source captured) and the grid's requests. Raises ValueError, nothing created."""
    if context.scene.latent_textures.target == "OBJECT":
        raise ValueError("Compare makes flat images (a grid of settings), not a Whole Object texture: set Target to "
                         "Image to compare settings, then set it back to Whole Object and Generate")
    values: list[Any]
    if axis == "SCHEDULER":
        values = parse_schedulers(schedulers)
    else:
        values = parse_numbers(steps, "steps", integer=True)
    guidance_values = parse_numbers(guidance, "guidance")
    plan = targets.prepare(context, place_result=False)  # a grid records no filmstrip / attention maps
    if plan.request.seed is None:
        plan.request.seed = secrets.randbelow(MAX_SEED + 1)  # one seed for every cell
    grid = plan_grid(plan.request, guidance_values, axis, values)
    return plan, grid


class CompareJob(GenerationJob):
    """Runs every cell of a grid; progress counts the steps of all cells; the result is the grid of results."""

    def __init__(self, options, grid: GridPlan) -> None:
        super().__init__(options, grid.rows[0][0])
        self.grid = grid
        self.total = sum(_denoising_steps(r) for row in grid.rows for r in row)
        self._done = 0

    def work(self, engine) -> Any:
        out = []
        for row in self.grid.rows:
            out.append([])
            for request in row:
                result = engine.generate(request, on_progress=self._on_progress, cancel_event=self.cancel_event)
                self._done += _denoising_steps(request)
                out[-1].append(result)
        return out

    def _on_progress(self, event) -> None:
        if event.stage == "DENOISE":
            event = dataclasses.replace(event, step=self._done + event.step, total=self.total)
        super()._on_progress(event)

    def describe(self) -> str:
        if self.stage == "DENOISE" and self.step:
            return f"Comparison grid: step {self.step}/{self.total}"
        return super().describe()


def _denoising_steps(request) -> int:
    return int(request.steps * request.strength) if request.mode != "TXT2IMG" else request.steps


class CompareRun(GenerationRun):
    """A started comparison: writes one grid image, touches nothing else."""

    def __init__(self, plan: Plan, grid: GridPlan) -> None:
        super().__init__(plan, CompareJob(plan.options, grid))
        self.grid = grid

    def finish(self, context: bpy.types.Context, events: list[JobEvent]) -> str:
        final = next((e for e in reversed(events) if e.kind != "progress"), None)
        if final is None or final.kind != "done":
            return super().finish(context, events)  # the error / cancel reports
        cells = final.payload
        first = cells[0][0]
        seed = first.seed
        recipe = dict(first.recipe, target="IMAGE")
        title = f"{recipe['prompt'][:80]}  ·  seed {seed}"
        grid, keys = compose(self.grid, [[r.image for r in row] for row in cells], title)
        recipe.update(keys)
        changes = results.Changes()
        try:
            name = results.image_name(recipe["prompt"], seed) + " compare"
            image = create_insight_image(changes, name, grid, recipe)
            changes.commit()
        except Exception as error:
            traceback.print_exc()
            changes.rollback()
            self.reports.append(("ERROR", f"Could not write the comparison grid: {error}"))
            return "CANCELLED"
        self.image = image
        self.reports.append(("INFO", f"Comparison grid '{image.name}' (seed {seed})"))
        return "FINISHED"
