"""Put a generated image where the artist asked for it: an Image, a material, or a camera projection.

Everything is created through a ``Changes`` record so that a failure half-way
removes what was made and puts back what was changed: the scene is left as it was.
"""

from __future__ import annotations

import re
from typing import Callable

import bpy
import numpy as np

from . import geometry, pixels, projection

RECIPE_PROPERTY = "latent_textures"
IMAGE_NODE_LABEL = "Latent Textures"
MATERIAL_NAME = "Latent Textures"
PROJECTION_MATERIAL_NAME = "Latent Textures Projection"
_NODE_SPACING = 300.0


class Changes:
    """Undo log for one generation's writes (the UI undo step covers success; this covers failure)."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def on_rollback(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def new_image(self, name: str, array: np.ndarray) -> bpy.types.Image:
        image = pixels.new_display_image(name, array)
        self.on_rollback(lambda: bpy.data.images.remove(image))
        return image

    def new_material(self, name: str) -> bpy.types.Material:
        material = bpy.data.materials.new(name)
        self.on_rollback(lambda: bpy.data.materials.remove(material))
        if bpy.app.version < (5, 0, 0):
            material.use_nodes = True
        return material

    def new_node(self, tree: bpy.types.NodeTree, node_type: str) -> bpy.types.Node:
        node = tree.nodes.new(node_type)
        name = node.name
        self.on_rollback(lambda: tree.nodes.remove(tree.nodes[name]) if name in tree.nodes else None)
        return node

    def link(self, tree: bpy.types.NodeTree, output, input_socket) -> None:
        """Link output -> input, remembering any link that this replaces."""
        previous = [(link.from_node.name, link.from_socket.identifier) for link in input_socket.links]
        node_name, socket_id = input_socket.node.name, input_socket.identifier
        tree.links.new(output, input_socket)

        def undo() -> None:
            node = tree.nodes.get(node_name)
            if node is None:
                return
            socket = next(s for s in node.inputs if s.identifier == socket_id)
            for link in list(socket.links):
                tree.links.remove(link)
            for from_name, from_id in previous:
                from_node = tree.nodes.get(from_name)
                if from_node is not None:
                    tree.links.new(next(s for s in from_node.outputs if s.identifier == from_id), socket)

        self.on_rollback(undo)

    def single_user_mesh(self, obj: bpy.types.Object) -> bpy.types.Mesh:
        """Give ``obj`` its own copy of a mesh other objects share (a projection is per object)."""
        shared = obj.data
        copy = shared.copy()
        obj.data = copy

        def undo() -> None:
            obj.data = shared
            bpy.data.meshes.remove(copy)

        self.on_rollback(undo)
        return copy

    def set(self, owner, attribute: str, value) -> None:
        previous = getattr(owner, attribute)
        setattr(owner, attribute, value)
        self.on_rollback(lambda: setattr(owner, attribute, previous))

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def image_name(prompt: str, seed: int) -> str:
    words = re.sub(r"[^\w\s-]", "", prompt, flags=re.UNICODE).split()
    stem = "_".join(words)[:40] or "texture"
    return f"LT_{stem}_{seed}"


def create_result_image(changes: Changes, array: np.ndarray, recipe: dict) -> bpy.types.Image:
    image = changes.new_image(image_name(recipe.get("prompt", ""), recipe["seed"]), array)
    image[RECIPE_PROPERTY] = recipe
    # Packed so it survives save + reload; a generated image is otherwise lost on save.
    image.pack()
    return image


def keep_control_image(changes: Changes, result: bpy.types.Image, control_image: np.ndarray) -> bpy.types.Image:
    """Keep what the model was conditioned on beside the result: '<result> control', named in its recipe."""
    image = changes.new_image(f"{result.name} control", control_image)
    image.pack()
    image.use_fake_user = True  # nothing else uses it: without a user Blender drops it on save
    result[RECIPE_PROPERTY]["control_image"] = image.name
    return image


def principled_bsdf(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    """The Principled BSDF that feeds the active Material Output, else the first one."""
    outputs = [n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"]
    output = next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)
    if output is not None:
        for link in output.inputs["Surface"].links:
            if link.from_node.type == "BSDF_PRINCIPLED":
                return link.from_node
    return next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)


def _ensure_principled(changes: Changes, tree: bpy.types.NodeTree) -> bpy.types.Node:
    bsdf = principled_bsdf(tree)
    if bsdf is not None:
        return bsdf
    bsdf = changes.new_node(tree, "ShaderNodeBsdfPrincipled")
    output = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output), None)
    if output is None:
        output = changes.new_node(tree, "ShaderNodeOutputMaterial")
        output.location = (bsdf.location.x + _NODE_SPACING, bsdf.location.y)
    changes.link(tree, bsdf.outputs["BSDF"], output.inputs["Surface"])
    return bsdf


def add_image_to_base_color(changes: Changes, material: bpy.types.Material, image: bpy.types.Image,
                            uv_map: str | None = None, box_projection: bool = False) -> bpy.types.Node:
    """An Image Texture node with ``image`` linked to the Principled BSDF's Base Color.

    Nodes already in the tree stay; a node that fed Base Color before keeps
    its place, only unlinked, so the artist can plug it back. ``uv_map`` reads
    a named UV map; ``box_projection`` maps by object-space box projection, for
    meshes without any UV map.
    """
    tree = material.node_tree
    bsdf = _ensure_principled(changes, tree)
    texture = changes.new_node(tree, "ShaderNodeTexImage")
    texture.image = image
    texture.label = IMAGE_NODE_LABEL
    texture.location = (bsdf.location.x - _NODE_SPACING * 1.5, bsdf.location.y)
    if uv_map is not None:
        uv_node = changes.new_node(tree, "ShaderNodeUVMap")
        uv_node.uv_map = uv_map
        uv_node.location = (texture.location.x - _NODE_SPACING, texture.location.y)
        changes.link(tree, uv_node.outputs["UV"], texture.inputs["Vector"])
    elif box_projection:
        texture.projection = "BOX"
        texture.projection_blend = 0.25
        coordinates = changes.new_node(tree, "ShaderNodeTexCoord")
        coordinates.location = (texture.location.x - _NODE_SPACING, texture.location.y)
        changes.link(tree, coordinates.outputs["Object"], texture.inputs["Vector"])
    changes.link(tree, texture.outputs["Color"], bsdf.inputs["Base Color"])
    tree.nodes.active = texture
    return texture


def _assign_material(changes: Changes, obj: bpy.types.Object, material: bpy.types.Material) -> None:
    if len(obj.material_slots) == 0:
        mesh = obj.data
        mesh.materials.append(material)
        changes.on_rollback(lambda: mesh.materials.pop(index=len(mesh.materials) - 1))
        return
    # Object-linked slots: the mesh (possibly shared) keeps its own materials.
    for slot in obj.material_slots:
        changes.set(slot, "link", "OBJECT")
        changes.set(slot, "material", material)


def apply_to_material(changes: Changes, obj: bpy.types.Object | None, image: bpy.types.Image) -> bpy.types.Material:
    """The image on ``obj``'s active material; a mesh without UVs gets box projection so it shows at all."""
    if obj is None or obj.type != "MESH":
        raise ValueError("Target is Material but the active object is not a mesh: select a mesh object")
    material = obj.active_material
    if material is None:
        material = changes.new_material(MATERIAL_NAME)
        _assign_material(changes, obj, material)
    elif material.node_tree is None:
        changes.set(material, "use_nodes", True)
    add_image_to_base_color(changes, material, image, box_projection=len(obj.data.uv_layers) == 0)
    return material


def apply_projection(changes: Changes, context: bpy.types.Context, objects: list[bpy.types.Object],
                     image: bpy.types.Image, width: int, height: int) -> bpy.types.Material:
    scene = context.scene
    depsgraph = context.evaluated_depsgraph_get()
    camera = geometry.view_camera(scene, scene.camera, width, height, depsgraph)
    material = changes.new_material(PROJECTION_MATERIAL_NAME)
    add_image_to_base_color(changes, material, image, uv_map=projection.PROJECTION_UV_NAME)
    for obj in objects:
        mesh = obj.data
        if sum(1 for other in bpy.data.objects if other.data == mesh) > 1:
            mesh = changes.single_user_mesh(obj)
        uvs = camera.uv(projection.loop_world_positions(obj, depsgraph))
        existed = mesh.uv_layers.get(projection.PROJECTION_UV_NAME) is not None
        if existed:
            previous = np.empty(len(mesh.loops) * 2, dtype=np.float32)
            mesh.uv_layers[projection.PROJECTION_UV_NAME].data.foreach_get("uv", previous)
        projection.write_uv_layer(mesh, uvs)
        changes.on_rollback(_uv_undo(mesh, existed, previous if existed else None))
        _assign_material(changes, obj, material)
    return material


def _uv_undo(mesh: bpy.types.Mesh, existed: bool, previous: np.ndarray | None) -> Callable[[], None]:
    def undo() -> None:
        layer = mesh.uv_layers.get(projection.PROJECTION_UV_NAME)
        if layer is None:
            return
        if existed:
            layer.data.foreach_set("uv", previous)
        else:
            mesh.uv_layers.remove(layer)
    return undo
