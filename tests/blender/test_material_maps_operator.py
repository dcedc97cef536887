"""``bpy.ops.latent_textures.material_maps`` end to end in background mode with tiny Marigold models built
offline (tools/tiny_models.py): the maps of any image, wired where it is a Base Color; the refusals leave
bpy.data unchanged. Random weights paint noise: what is checked is plumbing, wiring and recipes."""

import bpy
import numpy as np
import pytest

from harness import ADDON_MODULE, datablock_counts

ALL_MAPS = {"ALBEDO", "ROUGHNESS", "METALLIC", "NORMAL", "HEIGHT"}


def module(name):
    return __import__(f"{ADDON_MODULE}.{name}", fromlist=["_"])


@pytest.fixture
def marigold(settings, tiny_marigold_intrinsics, tiny_marigold_normals):
    settings.pbr_model = str(tiny_marigold_intrinsics)
    settings.normals_model = str(tiny_marigold_normals)
    return settings


@pytest.fixture
def offline():
    system = bpy.context.preferences.system
    online = system.use_online_access
    system.use_online_access = False
    yield
    system.use_online_access = online


def photo_on_cube(name="photo"):
    """An artist's own image (no recipe) as the cube's Base Color."""
    results = module("bridge.results")
    rng = np.random.default_rng(5)
    image = bpy.data.images.new(name, 32, 24, alpha=True)
    module("bridge.pixels").write_pixels(image, rng.random((24, 32, 4)).astype(np.float32))
    image.pack()
    cube = bpy.data.objects["Cube"]
    changes = results.Changes()
    material = results.target_material(changes, cube, lambda: changes.new_material(results.MATERIAL_NAME))
    results.add_image_to_base_color(changes, material, image)
    changes.commit()
    return image, material


def feeding(socket):
    return socket.links[0].from_node if socket.is_linked else None


def test_maps_of_any_image_go_into_its_material(marigold):
    image, material = photo_on_cube()
    result_before = marigold.result_image
    assert bpy.ops.latent_textures.material_maps(image=image.name, maps=ALL_MAPS) == {"FINISHED"}
    maps = {kind: bpy.data.images[f"photo {kind}"] for kind in ("albedo", "roughness", "metallic", "normal", "height")}
    for kind, made in maps.items():
        assert tuple(made.size) == (32, 24), kind
        recipe = made["latent_textures"].to_dict()
        assert recipe["pbr_map"] == kind and recipe["pbr_source"] == "photo"
        field = "pbr_model" if kind in ("albedo", "roughness", "metallic") else "normals_model"
        assert recipe[field] == marigold.pbr_model if field == "pbr_model" else recipe[field] == marigold.normals_model
    shader = module("bridge.results").principled_bsdf(material.node_tree)
    assert feeding(shader.inputs["Base Color"]).image == maps["albedo"]
    assert feeding(shader.inputs["Roughness"]).image == maps["roughness"]
    assert feeding(feeding(shader.inputs["Normal"]).inputs["Color"]).image == maps["normal"]
    assert marigold.result_image == result_before  # the operator writes maps, not a result
    # A flat texture's normal map is the model's normals as they are: unit vectors once decoded
    normal = module("bridge.pixels").read_pixels(maps["normal"])[..., :3] * 2.0 - 1.0
    np.testing.assert_allclose(np.linalg.norm(normal, axis=2), 1.0, atol=1e-4)


def test_the_result_image_is_the_default_and_the_scene_setting_picks_the_maps(marigold):
    image, material = photo_on_cube("LT_result_1")
    image["latent_textures"] = {"prompt": "p", "seed": 3, "target": "MATERIAL", "seamless": "NONE"}
    marigold.result_image = image
    marigold.pbr_maps = {"NORMAL"}
    assert bpy.ops.latent_textures.material_maps() == {"FINISHED"}
    assert bpy.data.images.get("LT_result_1 normal") is not None
    assert bpy.data.images.get("LT_result_1 albedo") is None
    made = bpy.data.images["LT_result_1 normal"]["latent_textures"].to_dict()
    assert made["prompt"] == "p" and made["seed"] == 3  # the source's recipe, plus the map's
    lit_node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == image)
    assert lit_node.outputs["Color"].is_linked  # no albedo asked: the lit image stays the Base Color


def test_a_non_marigold_repo_is_refused_and_changes_nothing(marigold, tiny_sd_model):
    image, _ = photo_on_cube()
    marigold.pbr_model = str(tiny_sd_model)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Marigold|pipeline"):
        bpy.ops.latent_textures.material_maps(image=image.name, maps={"ALBEDO"})
    assert datablock_counts() == before


def test_a_missing_model_offline_is_refused_and_changes_nothing(marigold, offline):
    image, _ = photo_on_cube()
    marigold.normals_model = "nobody/not-a-downloaded-marigold"
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="offline|not in the model caches|not found"):
        bpy.ops.latent_textures.material_maps(image=image.name, maps={"NORMAL"})
    assert datablock_counts() == before


def test_bad_requests_are_refused_before_anything_runs(marigold):
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="No material map chosen"):
        bpy.ops.latent_textures.material_maps(image="")
    with pytest.raises(RuntimeError, match="No image named 'nothing'"):
        bpy.ops.latent_textures.material_maps(image="nothing", maps={"ALBEDO"})
    texture = bpy.data.images.new("atlas", 16, 16)
    texture["latent_textures"] = {"target": "OBJECT", "seed": 1}
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="Whole Object texture"):
        bpy.ops.latent_textures.material_maps(image="atlas", maps={"ALBEDO"})
    texture["latent_textures"] = {"target": "PROJECT", "seed": 1}
    with pytest.raises(RuntimeError, match="Height maps are made for flat textures only"):
        bpy.ops.latent_textures.material_maps(image="atlas", maps={"HEIGHT"})
    assert datablock_counts() == before


def test_making_the_maps_again_replaces_them_under_the_same_names(marigold):
    image, material = photo_on_cube()
    assert bpy.ops.latent_textures.material_maps(image=image.name, maps={"ALBEDO", "NORMAL"}) == {"FINISHED"}
    nodes = len(material.node_tree.nodes)
    assert bpy.ops.latent_textures.material_maps(image=image.name, maps={"ALBEDO", "NORMAL"}) == {"FINISHED"}
    maps = sorted(i.name for i in bpy.data.images if i.get("latent_textures", {}).get("pbr_source") == "photo")
    assert maps == ["photo albedo", "photo normal"] and len(material.node_tree.nodes) == nodes
    shader = module("bridge.results").principled_bsdf(material.node_tree)
    assert feeding(shader.inputs["Base Color"]).image.name == "photo albedo"


def test_a_cancelled_run_changes_nothing(marigold):
    """Esc sets the job's cancel event: the engine stops before its next UNet call, nothing is written."""
    image, _ = photo_on_cube()
    material_maps = module("bridge.material_maps")
    plan = material_maps.prepare(bpy.context, image.name, {"ALBEDO", "NORMAL"})
    before = datablock_counts()
    run = material_maps.MaterialMapsRun(plan)
    run.job.cancel()
    run.run_here()
    assert run.tick(bpy.context) == "CANCELLED"
    assert ("WARNING", "Material maps cancelled: nothing was changed") in run.reports
    assert datablock_counts() == before
    assert module("bridge.job").current_job() is None


def test_progress_reads_maps_and_the_step(marigold):
    image, _ = photo_on_cube()
    material_maps = module("bridge.material_maps")
    run = material_maps.MaterialMapsRun(material_maps.prepare(bpy.context, image.name, {"NORMAL"}))
    seen = []
    real = run.job._on_progress

    def remember(event):
        real(event)
        if event.stage == "MAPS":
            seen.append(event)

    run.job._on_progress = remember
    run.run_here()
    described = set()
    while True:  # the events the UI's timer would drain, one by one
        event = run.job.events.get_nowait()
        if event.kind != "progress":
            break
        payload = event.payload
        run.job.stage, run.job.step, run.job.total = payload.stage, payload.step, payload.total
        run.job.detail = payload.detail
        described.add(run.job.describe())
    assert seen and f"maps: normal 1/{seen[0].total}" in described
    run.abandon()
