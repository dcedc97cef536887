"""``generate``, running: each planned texture through ``bpy.ops.latent_textures.generate()``, then the outputs."""

from __future__ import annotations

import contextlib
import io
import sys
import time

import bpy

from . import plan, support
from .arguments import check_numbers, file_prompts, output_paths
from .errors import CommandError, operator_message, say
from .models import model_cache
from .writer import write_outputs


@contextlib.contextmanager
def _watching(progress: support.Progress):
    """Show each denoising step of the generations run meanwhile (the operator runs them in this thread)."""
    from ..bridge.job import progress_listener

    def on_progress(event) -> None:
        progress.step(getattr(event, "stage", "DENOISE"), event.step, event.total)

    with progress_listener(on_progress):
        yield


def _select(context, names: list[str]) -> None:
    if not names:
        return
    wanted = set(names)
    for obj in context.scene.objects:
        obj.select_set(obj.name in wanted)
    context.view_layer.objects.active = context.scene.objects[names[0]]


def _generate_one(context, job: plan.Job, index: int, total: int, progress: support.Progress):
    settings = context.scene.latent_textures
    settings.prompt = job.prompt
    _select(context, job.objects)
    progress.start_image(index, job.label())
    captured = io.StringIO()  # the operator's reports (printed on stdout): replayed on stderr
    try:
        with _watching(progress), contextlib.redirect_stdout(captured):
            outcome = bpy.ops.latent_textures.generate()
    except RuntimeError as error:
        progress.fail_image()
        _replay(captured.getvalue(), skip=("Error:",))
        where = f"texture {index}/{total} ({job.label()}): " if total > 1 else ""
        raise CommandError(where + operator_message(error)) from None
    if outcome != {"FINISHED"}:
        progress.fail_image()
        _replay(captured.getvalue(), skip=())
        raise CommandError(f"texture {index}/{total} ({job.label()}) did not finish: {', '.join(sorted(outcome))}")
    _replay(captured.getvalue(), skip=("Info: Generated",))
    image = settings.result_image
    recipe = image["latent_textures"].to_dict() if "latent_textures" in image else {}
    progress.finish_image(f"'{image.name}', seed {recipe.get('seed', settings.seed)}")
    return image, recipe


def _replay(text: str, skip: tuple[str, ...]) -> None:
    for line in text.splitlines():
        if line.strip() and not line.startswith(skip):
            sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _kept_selection(context):
    """Put the selection and the active object back after the batch, so the saved file keeps the artist's."""
    scene = context.scene
    selected = [o.name for o in scene.objects if o.select_get()]
    active = context.view_layer.objects.active
    active_name = active.name if active is not None else None
    try:
        yield
    finally:
        if scene == context.scene:
            for obj in scene.objects:
                obj.select_set(obj.name in selected)
            context.view_layer.objects.active = scene.objects.get(active_name) if active_name else None


def run_generate(args) -> int:
    started = time.monotonic()
    out, texture_dir = output_paths(args)
    check_numbers(args)
    prompts_from_file = file_prompts(args)
    plan.open_scene(args.blend)
    context = bpy.context
    with model_cache(args.model_cache) as cache_dir:
        planned = plan.plan_generation(args, context, cache_dir, prompts_from_file)
        progress = support.Progress(sys.stderr, len(planned.jobs))
        results = []
        with _kept_selection(context):
            for index, job in enumerate(planned.jobs, start=1):
                results.append(_generate_one(context, job, index, len(planned.jobs), progress))
    written = write_outputs(results, planned.source, out, texture_dir)
    for path in written:
        say(f"Wrote {path}")
    noun = "texture" if len(results) == 1 else "textures"
    say(f"Done: {len(results)} {noun} in {support.format_seconds(time.monotonic() - started)}")
    return 0
