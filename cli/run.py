"""``generate``, running: each planned texture through ``bpy.ops.latent_textures.generate()``, then the outputs."""

from __future__ import annotations

import contextlib
import io
import sys
import time

import bpy

from . import plan, support
from .arguments import file_prompts, output_paths
from .errors import CommandError, operator_message, say
from .generate_arguments import check_numbers
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


def _generate_one(context, job: plan.Job, index: int, total: int, progress: support.Progress, frames: dict):
    context.scene.latent_textures.prompt = job.prompt
    _select(context, job.objects)
    return run_operator(context, bpy.ops.latent_textures.generate, {}, job.label(), index, total, progress,
                        frames=frames)


def run_operator(context, operator, options: dict, label: str, index: int, total: int, progress: support.Progress,
                 *, frames: dict | None = None) -> list[tuple]:
    """One run of ``operator(**options)`` with its per-step progress; returns ``[(image, recipe), ...]``:
    its result image, then (Whole Object) the other meshes' textures it baked."""
    settings = context.scene.latent_textures
    images_before = {image.as_pointer() for image in bpy.data.images}
    progress.start_image(index, label)
    captured = io.StringIO()  # the operator's reports (printed on stdout): replayed on stderr
    try:
        keep_frames = _filmstrips(frames) if frames is not None else contextlib.nullcontext()
        with _watching(progress), keep_frames, contextlib.redirect_stdout(captured):
            outcome = operator(**options)
    except RuntimeError as error:
        progress.fail_image()
        _replay(captured.getvalue(), skip=("Error:",))
        where = f"texture {index}/{total} ({label}): " if total > 1 else ""
        raise CommandError(where + operator_message(error)) from None
    if outcome != {"FINISHED"}:
        progress.fail_image()
        _replay(captured.getvalue(), skip=())
        raise CommandError(f"texture {index}/{total} ({label}) did not finish: {', '.join(sorted(outcome))}")
    _replay(captured.getvalue(), skip=("Info: Generated",))
    image = settings.result_image
    recipe = _recipe(image)
    progress.finish_image(f"'{image.name}', seed {recipe.get('seed', settings.seed)}")
    return [(image, recipe)] + _other_mesh_textures(images_before, image)


def _recipe(image) -> dict:
    return image["latent_textures"].to_dict() if "latent_textures" in image else {}


def _other_mesh_textures(images_before: set[int], result) -> list[tuple]:
    """The textures a Whole Object run baked for its other meshes: its new images with a mesh in
    their recipe, but not its kept view images (those name a view)."""
    made = []
    for image in sorted(bpy.data.images, key=lambda image: image.name):
        if image.as_pointer() in images_before or image == result:
            continue
        recipe = _recipe(image)
        if recipe.get("target") == "OBJECT" and recipe.get("mesh") and "view_index" not in recipe:
            made.append((image, recipe))
    return made


@contextlib.contextmanager
def _filmstrips(frames: dict):
    """Keep the full-size filmstrip frames of the generations run meanwhile, by result image name."""
    from ..bridge.insight import filmstrip_listener

    with filmstrip_listener(frames.__setitem__):
        yield


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
        if args.filmstrip:
            context.scene.latent_textures.record_filmstrip = True
        frames: dict = {}
        progress = support.Progress(sys.stderr, len(planned.jobs))
        results = []
        with _kept_selection(context):
            for index, job in enumerate(planned.jobs, start=1):
                results += _generate_one(context, job, index, len(planned.jobs), progress, frames)
    written = write_outputs(results, planned.source, out, texture_dir, frames if args.filmstrip else None)
    for path in written:
        say(f"Wrote {path}")
    noun = "texture" if len(results) == 1 else "textures"
    say(f"Done: {len(results)} {noun} in {support.format_seconds(time.monotonic() - started)}")
    return 0
