"""Validate and build the installable extension zip with Blender's own extension tooling.

The bpy wheel ships the same ``blender_ext.py`` that ``blender --command extension``
runs, so this needs no Blender binary:

    python tools/build_extension.py --out dist
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def blender_ext_script() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bpy is not installed in this Python: run `make setup` first")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    matches = sorted(package_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not matches:
        raise SystemExit(f"blender_ext.py not found under {package_dir}")
    return matches[-1]


def _run(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(blender_ext_script()), *args], capture_output=True, text=True,
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"blender_ext.py {args[0]} failed:\n{output}")
    return output


def validate(source_dir: Path = REPO_ROOT) -> str:
    return _run("validate", str(source_dir))


def build(output_dir: Path, source_dir: Path = REPO_ROOT) -> Path:
    """Validate, then build; returns the zip's path."""
    validate(source_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    before = set(output_dir.glob("*.zip"))
    _run("build", "--source-dir", str(source_dir), "--output-dir", str(output_dir))
    built = sorted(set(output_dir.glob("*.zip")) - before) or sorted(output_dir.glob("latent_textures-*.zip"))
    if not built:
        raise RuntimeError(f"the build wrote no zip into {output_dir}")
    return built[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="folder for the zip (default: dist)")
    args = parser.parse_args()
    zip_path = build(args.out.resolve())
    print(f"Built {zip_path}")


if __name__ == "__main__":
    main()
