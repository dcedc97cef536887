"""Add-on preferences: the engine's packages and models (install, status, downloads) and the hardware settings."""

import os
import textwrap

import bpy

from .dependencies.torch_build import OVERRIDE_ITEMS as TORCH_BUILD_ITEMS

DEVICE_ITEMS = (
    ("AUTO", "Auto", "CUDA if present, then Apple MPS, then the CPU"),
    ("CUDA", "CUDA", "An NVIDIA GPU (or AMD through ROCm)"),
    ("MPS", "MPS", "Apple Silicon GPU"),
    ("CPU", "CPU", "The processor: slow but always there"),
)
PRECISION_ITEMS = (
    ("AUTO", "Auto", "GPUs: bf16 where the card supports it, else fp16. The CPU: bf16 where it has native bf16 "
     "(AVX-512 BF16 / AMX: ~3x faster), else fp32"),
    ("FP16", "fp16", "Half precision: half the memory on GPUs"),
    ("BF16", "bf16", "bfloat16: half the memory, fewer overflows than fp16 on recent cards; "
     "2-3x faster on CPUs with native bf16 (AVX-512 BF16 / AMX), with slightly different pixels"),
    ("FP32", "fp32", "Full precision: the same pixels from the same seed on any CPU of the same kind, "
     "slower; needed by GTX 16xx cards"),
)


DOWNLOAD_TO_ITEMS = (
    ("ADDON", "Add-on Folder", "Downloads go to the Model Cache folder above"),
    ("SHARED", "Shared Hugging Face Cache",
     "Downloads go to the standard Hugging Face cache (HF_HUB_CACHE / HF_HOME), where diffusers scripts and other "
     "tools find them too"),
)


class LatentTexturesModelFolder(bpy.types.PropertyGroup):
    path: bpy.props.StringProperty(
        name="Folder",
        description="A folder of models (e.g. ComfyUI's models/checkpoints or Automatic1111's models/Lora)",
        default="",
        subtype="DIR_PATH",
    )


def default_model_cache_dir() -> str:
    return bpy.utils.extension_path_user(__package__, path="models", create=False)


def compile_cache_dir() -> str:
    """Where the engine keeps compiled models between Blender sessions (Compile the Model)."""
    return bpy.utils.extension_path_user(__package__, path="compile-cache", create=False)


def _torch_build_changed(self, context) -> None:
    from .dependencies.state import STATE, update_torch_build

    update_torch_build(STATE, self.torch_build)


class LatentTexturesPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model_cache_dir: bpy.props.StringProperty(
        name="Model Cache",
        description="Folder that downloaded models are stored in (empty: the add-on's user folder)",
        default="",
        subtype="DIR_PATH",
    )
    download_to: bpy.props.EnumProperty(
        name="Download To",
        description="Where models fetched from the Hugging Face Hub are stored. Either way a repo id is first "
                    "looked up in the add-on's folder, then in the shared cache, and never downloaded twice",
        items=DOWNLOAD_TO_ITEMS,
        default="ADDON",
    )
    model_folders: bpy.props.CollectionProperty(type=LatentTexturesModelFolder, name="Model Folders")
    device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO")
    precision: bpy.props.EnumProperty(name="Precision", items=PRECISION_ITEMS, default="AUTO")
    attention_slicing: bpy.props.BoolProperty(
        name="Attention Slicing", description="Less GPU memory for a little speed", default=False,
    )
    cpu_offload: bpy.props.BoolProperty(
        name="CPU Offload",
        description="Keep only the running model part on the GPU: for cards with 4-6 GB",
        default=False,
    )
    torch_compile: bpy.props.BoolProperty(
        name="Compile the Model",
        description=(
            "torch.compile the UNet (on the CPU with weight freezing). The first Generate at each image size "
            "compiles for about 3 minutes (SD 1.5 on a 2-core CPU); the compiled code is kept in the add-on's user "
            "folder, so later Blender sessions spend about 50 s loading it. Off by default: on the CPUs measured "
            "a compiled step is 7-16% slower than the default, which packs the weights once without compiling; "
            "on NVIDIA cards make bench measures it"
        ),
        default=False,
    )
    allow_pickle: bpy.props.BoolProperty(
        name="Allow Pickle Checkpoints",
        description=(
            "Load .ckpt/.bin/.pt files. They can run arbitrary code when loaded: "
            "only enable this for files you trust"
        ),
        default=False,
    )
    preview_decoder: bpy.props.EnumProperty(
        name="Live Preview",
        description="How the live preview is drawn while the model paints",
        items=(
            ("LINEAR", "Fast", "A blocky colour estimate from the latents: no extra model, no cost"),
            ("TAESD", "Sharp (TAESD)", "A tiny VAE decodes every step at full size (about 10 MB, downloaded on "
             "first use with online access; falls back to Fast offline)"),
        ),
        default="LINEAR",
    )
    torch_build: bpy.props.EnumProperty(
        name="PyTorch Build",
        description="Which PyTorch build Install Dependencies downloads (Automatic: from this machine's GPU)",
        items=TORCH_BUILD_ITEMS,
        default="AUTO",
        update=_torch_build_changed,
    )

    def resolved_model_cache_dir(self) -> str:
        if self.model_cache_dir:
            return bpy.path.abspath(self.model_cache_dir)
        return default_model_cache_dir()

    def resolved_download_dir(self) -> str:
        """Where downloads go (the ``download_to`` preference)."""
        from .dependencies.hf_cache import standard_hub_cache

        return standard_hub_cache() if self.download_to == "SHARED" else self.resolved_model_cache_dir()

    def hub_caches(self) -> list[tuple[str, str]]:
        """The Hugging Face caches a repo id is looked up in, in order, with their labels."""
        from .dependencies.hf_cache import standard_hub_cache

        return [(self.resolved_model_cache_dir(), "add-on cache"), (standard_hub_cache(), "Hugging Face cache")]

    def model_folder_paths(self) -> list[str]:
        return [bpy.path.abspath(folder.path) for folder in self.model_folders if folder.path.strip()]

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        _draw_packages(self, layout.box())
        _draw_models(self, layout.box())

        col = layout.column(heading="Hardware")
        col.prop(self, "device")
        col.prop(self, "precision")
        col.prop(self, "attention_slicing")
        col.prop(self, "cpu_offload")
        col.prop(self, "torch_compile")
        col.prop(self, "preview_decoder")


# -- drawing (reads the cached state only: nothing here probes, walks big folders or touches the network) --

def _wrapped(layout, text: str, icon: str = "NONE", width: int = 90) -> None:
    """Long messages (pip errors, paths) as several labels: a label cuts its text at the panel's edge."""
    col = layout.column(align=True)
    lines = [part for paragraph in text.splitlines() for part in (textwrap.wrap(paragraph, width) or [""])]
    for index, line in enumerate(lines):
        col.label(text=line, icon=icon if index == 0 else "BLANK1")


def _draw_packages(prefs, box) -> None:
    from .dependencies.blender import online_access, site_packages_dir
    from .dependencies.probe import format_memory
    from .dependencies.requirements import STATUS_PACKAGES
    from .dependencies.state import STATE

    row = box.row()
    row.label(text="Engine Packages", icon="SCRIPT")
    checking = STATE.probing is not None and STATE.probing.is_alive()
    sub = row.row()
    sub.enabled = not checking
    sub.operator("latent_textures.refresh_dependency_status", text="Checking…" if checking else "Refresh",
                 icon="FILE_REFRESH")

    status = STATE.status
    folder = site_packages_dir()
    if status is None:
        if STATE.status_error:
            _wrapped(box, STATE.status_error, icon="ERROR")
        elif not checking:
            box.label(text="Not checked yet: click Refresh (takes a few seconds)", icon="INFO")
    else:
        _wrapped(box, status.summary(), icon="CHECKMARK" if status.ready else "ERROR")
        grid = box.grid_flow(row_major=True, columns=3, even_columns=False, align=True)
        for name in STATUS_PACKAGES:
            package = status.package(name)
            grid.label(text=name)
            if not package.installed:
                grid.label(text="missing", icon="CANCEL")
                grid.label(text="")
                continue
            grid.label(text=package.version, icon="CHECKMARK" if package.matches_pin else "ERROR")
            if not package.matches_pin:
                grid.label(text=f"tested with {package.expected}")
            elif package.location and not package.location.startswith(folder):
                grid.label(text="from Blender's Python")
            else:
                grid.label(text="")
        col = box.column(align=True)
        if status.torch_imported:
            col.label(text=f"PyTorch build: {status.build}", icon="SETTINGS")
            for device in status.devices:
                icon = "DESKTOP" if device.type == "cpu" else "MEMORY"
                col.label(text=f"{device.type.upper()}: {device.name} · {format_memory(device.memory)}", icon=icon)
            if status.device_error:
                _wrapped(col, f"The GPU did not answer: {status.device_error}", icon="ERROR")
        elif status.torch_error:
            _wrapped(col, f"PyTorch does not load: {status.torch_error}", icon="ERROR")
        col.label(text=f"Python {status.python}: {status.executable}", icon="CONSOLE")
    col = box.column(align=True)
    col.label(text="Packages are looked for in:", icon="FILE_FOLDER")
    col.label(text=folder if os.path.isdir(folder) else f"{folder} (nothing installed yet)", icon="BLANK1")
    col.label(text="then in Blender's own Python", icon="BLANK1")

    box.prop(prefs, "torch_build")
    if STATE.torch_build is not None:
        _wrapped(box, f"Install uses PyTorch {STATE.torch_build.label}: {STATE.torch_build.reason}", icon="INFO")
    elif STATE.torch_build_error:
        _wrapped(box, STATE.torch_build_error, icon="ERROR")

    job = STATE.install
    if job is not None and job.running:
        box.progress(factor=job.progress.fraction or 0.0, type="BAR", text=job.progress.phase)
        col = box.column(align=True)
        for line in list(job.lines)[-3:]:
            col.label(text=line[:120])
        box.operator("latent_textures.cancel_dependency_install", icon="CANCEL")
    else:
        row = box.row()
        row.scale_y = 1.4
        if not online_access():
            row.enabled = False
        ready = status is not None and status.ready
        row.operator("latent_textures.install_dependencies",
                     text="Reinstall Dependencies" if ready else "Install Dependencies", icon="IMPORT")
        if not online_access():
            box.label(text="Online access is off (Preferences ▸ System ▸ Network): installing needs it",
                      icon="ERROR")
        if job is not None and job.result is not None:
            result = job.result
            icon = "CHECKMARK" if result.ok else "CANCEL" if result.cancelled else "ERROR"
            _wrapped(box, result.message, icon=icon)
            if not result.ok and not result.cancelled and result.tail:
                tail = box.box().column(align=True)
                for line in result.tail[-8:]:
                    tail.label(text=line[:140])


def _draw_models(prefs, box) -> None:
    from .dependencies.blender import online_access
    from .dependencies.catalog import CATALOG
    from .dependencies.hf_cache import cached_model
    from .dependencies.probe import format_bytes
    from .dependencies.state import STATE

    box.label(text="Models", icon="FILE_3D")
    col = box.column()
    col.prop(prefs, "model_cache_dir")
    cache_dir = prefs.resolved_model_cache_dir()
    if not prefs.model_cache_dir:
        col.label(text=cache_dir, icon="FILE_FOLDER")
    col.prop(prefs, "download_to")
    standard = prefs.hub_caches()[1][0]
    col.label(text=f"Shared Hugging Face cache (read too, never changed): {standard}", icon="FILE_FOLDER")
    row = box.row()
    size = format_bytes(STATE.cache_total) if STATE.cache_total is not None else "not measured (Refresh)"
    row.label(text=f"Cache size: {size}", icon="DISK_DRIVE")
    row.operator("latent_textures.open_model_cache", icon="FILEBROWSER")
    if not online_access():
        box.label(text="Online access is off: downloads are disabled (Preferences ▸ System ▸ Network)",
                  icon="ERROR")

    for model in CATALOG:
        entry = box.box()
        cached = cached_model(cache_dir, model.repo_id, measure=False)
        shared = None if cached is not None and cached.complete else cached_model(standard, model.repo_id, measure=False)
        if shared is not None and shared.complete:  # downloaded by another tool (or by Download To: Shared)
            cached = shared
        job = STATE.downloads.get(model.repo_id)
        row = entry.row()
        row.label(text=model.name, icon="CHECKMARK" if cached is not None and cached.complete else "IMPORT")
        if job is not None and job.running:
            row.operator("latent_textures.cancel_model_download", text="", icon="CANCEL").repo_id = model.repo_id
        else:
            if cached is None or not cached.complete:
                sub = row.row()
                sub.enabled = online_access()
                sub.operator("latent_textures.download_model", text="Download", icon="IMPORT").repo_id = model.repo_id
            if cached is not None and cached is not shared:  # the shared cache is never changed from here
                row.operator("latent_textures.remove_cached_model", text="", icon="TRASH").repo_id = model.repo_id
        info = entry.column(align=True)
        measured = STATE.cache_sizes.get(model.repo_id)
        if cached is not None and cached is shared:
            where = "in the shared Hugging Face cache"
        elif cached is not None and cached.complete:
            where = f"downloaded, {format_bytes(measured)}" if measured is not None else "downloaded"
        elif cached is not None:
            where = f"partly downloaded ({cached.problem})"
        else:
            where = f"about {format_bytes(model.download_bytes)}"
        info.label(text=f"{model.repo_id} · {model.family} · {model.resolution} px · {where}")
        info.label(text=f"Licence: {model.licence}. {model.licence_note}")
        info.label(text=f"{model.use} (start with {model.steps} steps, guidance {model.guidance:g})")
        if job is not None and job.running:
            entry.progress(factor=job.progress.fraction or 0.0, type="BAR", text=job.progress.text())
        elif job is not None and job.result is not None and not job.result.ok:
            _wrapped(entry, job.result.message, icon="CANCEL" if job.result.cancelled else "ERROR")

    # Models fetched by a Generate (or by hand) that are not in the list, as measured at the last Refresh.
    listed = {model.repo_id for model in CATALOG}
    others = [(repo_id, size) for repo_id, size in sorted(STATE.cache_sizes.items()) if repo_id not in listed]
    if others:
        col = box.column(align=True)
        col.label(text="Other models in the cache:")
        for repo_id, size in others:
            row = col.row()
            row.label(text=f"{repo_id} · {format_bytes(size)}", icon="FILE_3D")
            row.operator("latent_textures.remove_cached_model", text="", icon="TRASH").repo_id = repo_id

    box.prop(prefs, "allow_pickle")
    _draw_model_folders(prefs, box.box())


def _draw_model_folders(prefs, box) -> None:
    """The folders of other tools' models, and what the last scan found in them (never scanned here)."""
    from .dependencies.model_scan import KIND_LABELS, SCAN

    row = box.row()
    row.label(text="Model Folders (checkpoints, LoRAs, ControlNets from other tools)", icon="FILE_FOLDER")
    row.operator("latent_textures.scan_models", text="Scan", icon="FILE_REFRESH")
    for index, folder in enumerate(prefs.model_folders):
        row = box.row(align=True)
        row.prop(folder, "path", text="")
        row.operator("latent_textures.remove_model_folder", text="", icon="X").index = index
    box.operator("latent_textures.add_model_folder", text="Add Folder…", icon="ADD")
    listed = set(prefs.model_folder_paths())
    for label, path in SCAN.tool_folders_found():
        if path not in listed:
            row = box.row()
            row.label(text=f"Found {label}: {path}", icon="IMPORT")
            row.operator("latent_textures.add_model_folder", text="Add", icon="ADD").directory = path
    if not SCAN.scanned:
        box.label(text="Not scanned yet: click Scan (reads file headers only, takes a moment)", icon="INFO")
        return
    counts = {kind: sum(1 for e in SCAN.entries if e.kind == kind) for kind in KIND_LABELS}
    found = ", ".join(f"{n} {KIND_LABELS[kind]}" for kind, n in counts.items() if n)
    box.label(text=f"Found {len(SCAN.entries)} ({found or 'nothing'}) in {SCAN.seconds * 1000:.0f} ms", icon="INFO")
    for path in SCAN.missing:
        box.label(text=f"Folder not found: {path}", icon="ERROR")
    col = box.column(align=True)
    for entry in SCAN.entries[:60]:
        icon = "ERROR" if entry.problem else "CANCEL" if entry.refused else "FILE_3D"
        col.label(text=f"{entry.describe()} · {entry.origin}", icon=icon)
    if len(SCAN.entries) > 60:
        col.label(text=f"… and {len(SCAN.entries) - 60} more (all are in the Model field's search)")


def get_preferences(context) -> LatentTexturesPreferences:
    return context.preferences.addons[__package__].preferences


classes = (LatentTexturesModelFolder, LatentTexturesPreferences)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()


def unregister() -> None:
    # A running pip or download must not outlive the add-on that started it.
    from .dependencies.blender import shutdown

    shutdown()
    _unregister_classes()
