"""``latent_textures.install_dependencies``: pip-install the engine's pinned packages into the add-on's user folder."""

from __future__ import annotations

import sys

import bpy

from ..dependencies.blender import WatchJobMixin
from ..dependencies.requirements import ENGINE_PINS


class LATENT_TEXTURES_OT_install_dependencies(WatchJobMixin, bpy.types.Operator):
    bl_idname = "latent_textures.install_dependencies"
    bl_label = "Install Dependencies"
    bl_description = (
        "Download PyTorch (the build for this machine's GPU), diffusers and the other engine packages into "
        "the add-on's own folder. The previous install stays in use until the new one is complete"
    )

    # For tests and experts (a local wheel folder, a mirror); hidden in the UI.
    requirements: bpy.props.StringProperty(
        name="Requirements",
        description="Packages to install instead of the pinned engine packages (space separated)",
        default="", options={"HIDDEN", "SKIP_SAVE"},
    )
    index_url: bpy.props.StringProperty(
        name="Index URL", description="A package index instead of PyPI (a mirror)",
        default="", options={"HIDDEN", "SKIP_SAVE"},
    )
    find_links: bpy.props.StringProperty(
        name="Find Links", description="A folder (or URL) of wheel files to install from",
        default="", options={"HIDDEN", "SKIP_SAVE"},
    )
    no_index: bpy.props.BoolProperty(
        name="No Index", description="Use only Find Links: nothing is downloaded",
        default=False, options={"HIDDEN", "SKIP_SAVE"},
    )
    run_modal: bpy.props.BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        """Not while an install runs."""
        from ..dependencies.state import STATE

        return not STATE.installing

    def invoke(self, context, event):
        self.run_modal = True
        plan = self._plan(context)
        if plan is None:
            return {"CANCELLED"}
        self._prepared = plan
        size = " (the PyTorch build for this machine's GPU)"
        if not callable(plan) and plan.torch_build is not None:
            size = f" (PyTorch {plan.torch_build.label}: about {plan.torch_build.variant.download_bytes / 1e9:.1f} GB)"
        count = len(ENGINE_PINS) if callable(plan) else len(plan.requirements)
        return context.window_manager.invoke_confirm(
            self, event, title="Install Dependencies",
            message=f"Download and install {count} packages{size}?",
            confirm_text="Install", icon="IMPORT",
        )

    def execute(self, context):
        from ..dependencies.blender import wants_modal
        from ..dependencies.install import InstallJob
        from ..dependencies.state import STATE

        if STATE.installing:
            self.report({"ERROR"}, "An install is already running")
            return {"CANCELLED"}
        plan = getattr(self, "_prepared", None) or self._plan(context)
        if plan is None:
            return {"CANCELLED"}
        job = InstallJob(plan, on_line=_echo)
        STATE.install = job
        if wants_modal(self, context):
            job.start()
            self.report({"INFO"}, "Installing dependencies… (progress in the add-on's preferences)")
            return self.watch(context)
        return self.finish(job.run())

    # -- the plan -------------------------------------------------------------------
    def _plan(self, context):
        """The install to run, or None after reporting why not.

        Never runs ``nvidia-smi`` here, on Blender's main thread: the facts of
        the last Refresh are used, and without them the returned plan is a
        function that the install job calls on its own thread.
        """
        from ..dependencies import blender
        from ..dependencies.install import InstallError, InstallPlan, check_python, engine_plan
        from ..dependencies.pip import PackageSource
        from ..dependencies.state import STATE
        from ..dependencies.system_facts import detect
        from ..dependencies.torch_build import UnsupportedPlatform, choose_torch_build
        from ..preferences import get_preferences

        source = PackageSource(
            index_url=self.index_url or None,
            find_links=tuple(self.find_links.split()) if self.find_links else (),
            no_index=self.no_index,
        )
        if source.needs_network and not blender.online_access():
            self.report({"ERROR"}, blender.offline_reason("the packages (PyTorch, diffusers…)"))
            return None
        folders = dict(python=blender.python_executable(), target=blender.site_packages_dir(),
                       staging=blender.staging_dir(), temp_dir=blender.pip_temp_dir())
        if self.requirements.strip():
            return InstallPlan(requirements=tuple(self.requirements.split()), source=source, **folders)
        override = get_preferences(context).torch_build
        search_path = list(sys.path)
        try:
            check_python(sys.version_info)
            if STATE.facts is not None:
                return engine_plan(build=choose_torch_build(STATE.facts, override), source=source,
                                   search_path=search_path, **folders)
        except (InstallError, UnsupportedPlatform) as error:
            self.report({"ERROR"}, str(error))
            return None

        def plan_after_detecting():
            STATE.facts = detect()
            try:
                build = choose_torch_build(STATE.facts, override)
            except UnsupportedPlatform as error:
                raise InstallError(str(error)) from error
            return engine_plan(build=build, source=source, search_path=search_path, **folders)

        return plan_after_detecting

    # -- the end --------------------------------------------------------------------
    def watched_result(self):
        from ..dependencies.state import STATE

        return STATE.install.result if STATE.install is not None else None

    def finish(self, result):
        from ..dependencies import blender
        from ..dependencies.state import STATE
        from ..preferences import get_preferences

        STATE.status = None  # what was probed before the install no longer holds
        if result.ok and not bpy.app.background:
            prefs = get_preferences(bpy.context)  # show the new versions without another click
            blender.refresh(prefs.resolved_model_cache_dir(), prefs.torch_build, blocking=False)
        if result.ok:
            message = result.message
            if "torch" in sys.modules:
                message += " Restart Blender: this session already loaded the previous PyTorch."
            self.report({"INFO"}, message)
            return {"FINISHED"}
        if result.cancelled:
            self.report({"WARNING"}, result.message)
            return {"CANCELLED"}
        tail = "\n".join(result.tail[-8:])
        self.report({"ERROR"}, f"{result.message}\n{tail}" if tail else result.message)
        return {"CANCELLED"}


def _echo(line: str) -> None:
    """pip's output also goes to the system console, where support requests copy it from."""
    print(f"[latent_textures pip] {line}", file=sys.stderr)

