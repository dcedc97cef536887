"""``generate``'s command line: its sub-parser and the checks of its numbers (the run is ``cli/run.py``)."""

from __future__ import annotations

import argparse

from ..properties.image import MODE_ITEMS, SEAMLESS_ITEMS, SOURCE_ITEMS, TARGET_ITEMS
from ..properties.sampling import SCHEDULER_ITEMS
from . import conditioning, material_maps, reference, whole_object
from .arguments import add_command, check_sampling_numbers, choice_help, choices, parse_seed, scene_default, upper


def add_generate_command(commands, prog: str) -> argparse.ArgumentParser:
    generate = add_command(
        commands, "generate", "generate textures onto objects (one per prompt; a prompts file makes a batch)",
        "Generate textures with bpy.ops.latent_textures.generate, the operator the panel runs. Options you leave "
        "out keep the value saved in the scene (the add-on's defaults in a new scene). Everything is checked "
        "before the first texture is generated, and files are written only when every texture succeeded: on "
        "failure the exit status is non-zero, one line says why, and no output file is written. Texture files "
        "are named from their recipe (<prompt>_<seed>_<digest>.png), so the same command writes the same files "
        "again.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            f"  {prog} generate --blend crate.blend --objects Crate --prompt \"weathered oak planks\" \\\n"
            "      --seed 7 --out crate_textured.blend --texture-dir textures/\n"
            f"  {prog} generate --blend props.blend --objects Barrel --prompts-file prompts.txt \\\n"
            "      --model ~/models/sd15 --steps 20 --texture-dir textures/\n"
            f"  {prog} generate --prompt \"red brick wall\" --seamless BOTH --out wall.blend  "
            "(no --blend: Blender's startup scene)\n"
            "\nexit status: 0 success, 1 failure (bad input, missing model, failed generation), "
            "2 bad arguments."
        ),
    )
    scene = generate.add_argument_group("scene")
    scene.add_argument("--blend", metavar="IN.blend",
                       help="the .blend file to texture (default: Blender's factory startup scene: a cube with a UV "
                            "map and a material, a camera and a light)")
    scene.add_argument("--objects", metavar="NAME[,NAME]", action="append",
                       help="mesh objects to texture, comma-separated or repeated. With --target MATERIAL each "
                            "object gets its own texture (one generation per object and prompt); with PROJECT "
                            "one texture per prompt is projected onto all of them from the scene camera; with OBJECT "
                            "each of their meshes gets a texture baked from several views into its own UV map. "
                            "Default: the active mesh (MATERIAL) or the selected meshes (PROJECT)")

    what = generate.add_argument_group("prompts")
    what.add_argument("--prompt", help="what to paint (default: the scene's prompt)")
    what.add_argument("--negative-prompt", metavar="TEXT", help="what to steer away from, for every prompt "
                      "(default: the scene's negative prompt)")
    what.add_argument("--prompts-file", metavar="FILE",
                      help="a UTF-8 text file with one prompt per line: one texture per line (blank lines and "
                           "lines starting with # are skipped). Replaces --prompt")

    model = generate.add_argument_group("model")
    model.add_argument("--model", metavar="MODEL",
                       help="a Hugging Face repo id (org/name), a local diffusers folder (with model_index.json) "
                            f"or a single-file .safetensors checkpoint (default: {scene_default('model')})")
    model.add_argument("--model-cache", metavar="DIR",
                       help="the model cache folder for this run (Hugging Face cache layout, e.g. a shared or "
                            "pre-downloaded one on a render farm; default: the add-on preferences' Model Cache)")

    sampling = generate.add_argument_group("sampling")
    sampling.add_argument("--mode", type=upper, choices=choices(MODE_ITEMS), metavar="MODE",
                          help=f"{choice_help(MODE_ITEMS)} (default: {scene_default('mode')})")
    sampling.add_argument("--source", type=upper, choices=choices(SOURCE_ITEMS), metavar="SOURCE",
                          help=f"the image IMG2IMG and INPAINT start from. {choice_help(SOURCE_ITEMS)} "
                               f"(default: {scene_default('source')})")
    sampling.add_argument("--source-image", metavar="NAME|FILE",
                          help="for --source IMAGE: an Image datablock in the .blend, or an image file to load")
    sampling.add_argument("--strength", type=float, metavar="F",
                          help=f"IMG2IMG: how much of the source is repainted, above 0 up to 1 "
                               f"(default: {scene_default('strength')})")
    sampling.add_argument("--width", type=int, metavar="PX",
                          help=f"image width, a multiple of 8 from 64 to 4096 (default: {scene_default('width')})")
    sampling.add_argument("--height", type=int, metavar="PX",
                          help=f"image height, a multiple of 8 from 64 to 4096 (default: {scene_default('height')})")
    sampling.add_argument("--steps", type=int, metavar="N",
                          help=f"denoising steps (default: {scene_default('steps')})")
    sampling.add_argument("--guidance", type=float, metavar="F",
                          help="how strongly the prompt is followed, 0 to 30; 1 or less turns guidance off "
                               f"(default: {scene_default('guidance_scale')})")
    sampling.add_argument("--scheduler", type=upper, choices=choices(SCHEDULER_ITEMS), metavar="NAME",
                          help=f"{choice_help(SCHEDULER_ITEMS)} (default: {scene_default('scheduler')})")
    sampling.add_argument("--seed", type=parse_seed, metavar="N|random",
                          help="noise seed, 0 to 2147483647, the same for every texture of the run; 'random' picks "
                               "a new one per texture (default: the seed saved in the scene, 0 in a new scene: "
                               "runs are repeatable unless you ask for random)")
    sampling.add_argument("--seamless", type=upper, choices=choices(SEAMLESS_ITEMS), metavar="AXES",
                          help=f"tileable output: {choice_help(SEAMLESS_ITEMS)} "
                               f"(default: {scene_default('seamless')})")
    sampling.add_argument("--target", type=upper, choices=choices(TARGET_ITEMS), metavar="TARGET",
                          help=f"where each texture goes. {choice_help(TARGET_ITEMS)} "
                               f"(default: {scene_default('target')})")

    conditioning.add_arguments(generate)
    reference.add_arguments(generate)
    insight = generate.add_argument_group("insight (docs/insight.md)")
    insight.add_argument("--filmstrip", action="store_true",
                         help="also record the denoising filmstrip: a contact sheet of every step, packed in the "
                              ".blend; with --texture-dir also <texture>_filmstrip.png and every full-size frame "
                              "as <texture>_filmstrip/step_NNN.png")
    whole_object.add_arguments(generate)
    material_maps.add_arguments(generate)

    output = generate.add_argument_group("output (at least one)")
    output.add_argument("--out", metavar="OUT.blend",
                        help="save the textured scene here (textures packed inside; may be the --blend file "
                             "itself); written only if every texture succeeded")
    output.add_argument("--texture-dir", metavar="DIR",
                        help="also write each texture as DIR/<prompt>_<seed>_<digest>.png, with its recipe in "
                             "the PNG text metadata ('latent_textures': JSON; 'parameters': readable summary)")
    return generate


def check_numbers(args) -> None:
    """``generate``'s numbers: sampling, conditioning, the reference image and Whole Object."""
    check_sampling_numbers(args)
    conditioning.check_numbers(args)
    reference.check_numbers(args)
    whole_object.check_numbers(args)
