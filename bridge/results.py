"""Put a generated image where the artist asked for it: an Image, a material, or a camera projection.

Everything is created through a ``Changes`` record so that a failure half-way
removes what was made and puts back what was changed: the scene is left as it was.
"""

from __future__ import annotations

import re
from typing import Callable

import bpy
import numpy as np

from . import pixels, projection

RECIPE_PROPERTY = "latent_textures"
IMAGE_NODE_LABEL = "Latent Textures"
MATERIAL_NAME = "Latent Textures"
# The add-on's own nodes carry this custom property (their role): found again by it, never by label.
NODE_MARKER = "latent_textures"
TEXTURE_ROLE, VECTOR_ROLE, SHADER_ROLE = "texture", "vector", "shader"
_NODE_SPACING = 300.0
_TEXTURE_NODE_HEIGHT = 320.0


class Changes:
    """Undo log for one generation's writes (the UI undo step covers success; this covers failure)."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._when_done: list[Callable[[], None]] = []

    def on_rollback(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def when_done(self, action: Callable[[], None]) -> None:
        """Run ``action`` on ``commit`` only: removals that a rollback could not undo."""
        self._when_done.append(action)

    def new_image(self, name: str, array: np.ndarray, png: bytes | None = None) -> bpy.types.Image:
        """A byte sRGB image of ``array``; with ``png`` (``pixels.encode_png`` of it): packed from those bytes."""
        image = pixels.new_packed_png_image(name, png) if png is not None else pixels.new_display_image(name, array)
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

    def unlink(self, tree: bpy.types.NodeTree, input_socket) -> None:
        """Remove the links into ``input_socket`` (put back on rollback)."""
        previous = [(link.from_node.name, link.from_socket.identifier) for link in input_socket.links]
        for link in list(input_socket.links):
            tree.links.remove(link)
        node_name, socket_id = input_socket.node.name, input_socket.identifier

        def undo() -> None:
            node = tree.nodes.get(node_name)
            if node is None:
                return
            socket = next(s for s in node.inputs if s.identifier == socket_id)
            for from_name, from_id in previous:
                from_node = tree.nodes.get(from_name)
                if from_node is not None:
                    tree.links.new(next(s for s in from_node.outputs if s.identifier == from_id), socket)

        self.on_rollback(undo)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._when_done.clear()

    def commit(self) -> None:
        for action in self._when_done:
            action()
        self._when_done.clear()
        self._undo.clear()


def recipe_of(image: bpy.types.Image) -> dict:
    """The image's recipe as a plain dict ({} when it has none)."""
    recipe = image.get(RECIPE_PROPERTY)
    if recipe is None:
        return {}
    return recipe.to_dict() if hasattr(recipe, "to_dict") else dict(recipe)


def image_name(prompt: str, seed: int) -> str:
    words = re.sub(r"[^\w\s-]", "", prompt, flags=re.UNICODE).split()
    stem = "_".join(words)[:40] or "texture"
    return f"LT_{stem}_{seed}"


def create_result_image(changes: Changes, array: np.ndarray, recipe: dict, name: str | None = None,
                        png: bytes | None = None) -> bpy.types.Image:
    """The packed result image; ``png``: ``array`` encoded already (on the worker), packed as it is."""
    image = changes.new_image(name or image_name(recipe.get("prompt", ""), recipe["seed"]), array, png)
    image[RECIPE_PROPERTY] = recipe
    # Packed so it survives save + reload; a generated image is otherwise lost on save.
    if png is None:
        image.pack()
    return image


def _mark(node: bpy.types.Node, role: str) -> bpy.types.Node:
    node[NODE_MARKER] = role
    return node


def _role(node: bpy.types.Node) -> str | None:
    return node.get(NODE_MARKER)


def _active_output(changes: Changes, tree: bpy.types.NodeTree) -> bpy.types.Node:
    outputs = [n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"]
    output = next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)
    if output is None:
        output = _mark(changes.new_node(tree, "ShaderNodeOutputMaterial"), SHADER_ROLE)
    return output


def colour_input(changes: Changes, tree: bpy.types.NodeTree):
    """The socket the texture feeds, by the rule the README states.

    1. The shader on the active Material Output's Surface has a colour input
       called "Base Color" or "Color" (Principled, Diffuse, Emission, a group
       with such an input, ...): that input. The shader stays as it is.
    2. Another shader (Mix/Add Shader, Glass, ...): a new Principled BSDF is
       mixed in with a new Mix Shader (factor 1: the texture shows; the old
       shader stays linked to the mix's first input, one slider away).
    3. Nothing on Surface: a new Principled BSDF is linked to it.
    """
    output = _active_output(changes, tree)
    surface = output.inputs["Surface"]
    shader = surface.links[0].from_node if surface.is_linked else None
    if shader is not None and _role(shader) == SHADER_ROLE and shader.type == "MIX_SHADER":
        shader = shader.inputs[2].links[0].from_node if shader.inputs[2].is_linked else shader
    if shader is not None:
        for name in ("Base Color", "Color"):
            socket = shader.inputs.get(name)
            if socket is not None and socket.type == "RGBA":
                return socket
    principled = _mark(changes.new_node(tree, "ShaderNodeBsdfPrincipled"), SHADER_ROLE)
    if shader is None:
        principled.location = (output.location.x - _NODE_SPACING, output.location.y)
        changes.link(tree, principled.outputs["BSDF"], surface)
        return principled.inputs["Base Color"]
    mix = _mark(changes.new_node(tree, "ShaderNodeMixShader"), SHADER_ROLE)
    mix.inputs["Fac"].default_value = 1.0
    mix.location = (output.location.x, output.location.y + _NODE_SPACING)
    principled.location = (mix.location.x - _NODE_SPACING, mix.location.y + 2 * _NODE_SPACING)
    changes.link(tree, surface.links[0].from_socket, mix.inputs[1])
    changes.link(tree, principled.outputs["BSDF"], mix.inputs[2])
    changes.link(tree, mix.outputs["Shader"], surface)
    return principled.inputs["Base Color"]


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


def add_image_to_base_color(changes: Changes, material: bpy.types.Material, image: bpy.types.Image,
                            uv_map: str | None = None, box_projection: bool = False,
                            keep_history: bool = False) -> bpy.types.Node:
    """Show ``image`` on ``material``: the add-on's Image Texture node linked to the shader's colour input.

    The one function every target uses (Material, Project, the whole object).
    ``uv_map`` reads a named UV map through a UV Map node; ``box_projection``
    maps by object-space box projection, for meshes without any UV map.

    The add-on's own Image Texture node (recognised by its ``NODE_MARKER``
    custom property) is reused and its previous image is removed when nothing
    else uses it, so the .blend does not grow with every run. ``keep_history``
    instead adds a new node below the previous ones and keeps their images.
    Nodes the artist made are never removed; one that fed the colour input
    before stays in the tree, only unlinked, so it can be plugged back.
    """
    tree = material.node_tree
    socket = colour_input(changes, tree)
    shader = socket.node
    ours = [n for n in tree.nodes if n.type == "TEX_IMAGE" and _role(n) == TEXTURE_ROLE]
    texture = None
    if not keep_history and ours:
        texture = next((n for n in ours if any(link.to_socket == socket for link in n.outputs["Color"].links)),
                       ours[-1])
    if texture is None:
        texture = _mark(changes.new_node(tree, "ShaderNodeTexImage"), TEXTURE_ROLE)
        texture.label = IMAGE_NODE_LABEL
        lowest = min((n.location.y for n in ours), default=None)
        x = shader.location.x - _NODE_SPACING * 1.5
        y = shader.location.y if lowest is None else lowest - _TEXTURE_NODE_HEIGHT
        texture.location = (x, y)
    else:
        previous = texture.image
        if previous is not None and previous != image:
            changes.when_done(lambda: release_image(previous))
    changes.set(texture, "image", image)
    _wire_vector(changes, tree, texture, uv_map, box_projection)
    changes.link(tree, texture.outputs["Color"], socket)
    changes.set(tree.nodes, "active", texture)
    return texture


def _wire_vector(changes: Changes, tree: bpy.types.NodeTree, texture: bpy.types.Node,
                 uv_map: str | None, box_projection: bool) -> None:
    vector = texture.inputs["Vector"]
    helper = vector.links[0].from_node if vector.is_linked else None
    ours = helper if helper is not None and _role(helper) == VECTOR_ROLE else None
    location = (texture.location.x - _NODE_SPACING, texture.location.y)
    changes.set(texture, "projection", "BOX" if box_projection else "FLAT")
    if uv_map is not None:
        if ours is None or ours.type != "UVMAP":
            ours = _mark(changes.new_node(tree, "ShaderNodeUVMap"), VECTOR_ROLE)
            ours.location = location
            changes.link(tree, ours.outputs["UV"], vector)
        changes.set(ours, "uv_map", uv_map)
    elif box_projection:
        changes.set(texture, "projection_blend", 0.25)
        if ours is None or ours.type != "TEX_COORD":
            ours = _mark(changes.new_node(tree, "ShaderNodeTexCoord"), VECTOR_ROLE)
            ours.location = location
            changes.link(tree, ours.outputs["Object"], vector)
    elif ours is not None:  # a Mapping node the artist plugged in stays
        changes.unlink(tree, vector)
        ours = None
    if helper is not None and _role(helper) == VECTOR_ROLE and helper != ours:
        changes.when_done(lambda: tree.nodes.remove(helper) if not any(o.is_linked for o in helper.outputs) else None)


def release_image(image: bpy.types.Image) -> None:
    """Remove an image the add-on generated once nothing uses it any more (not the artist's own images)."""
    if RECIPE_PROPERTY in image and image.users == 0 and not image.use_fake_user:
        bpy.data.images.remove(image)


def _shared_mesh(obj: bpy.types.Object) -> bool:
    return sum(1 for other in bpy.data.objects if other.data == obj.data) > 1


def assign_to_active_slot(changes: Changes, obj: bpy.types.Object, material: bpy.types.Material,
                          slot_index: int | None = None) -> None:
    """``material`` into ``obj``'s active slot (or slot ``slot_index``) only; the other slots keep their materials."""
    if len(obj.material_slots) == 0:
        mesh = obj.data
        mesh.materials.append(material)
        changes.on_rollback(lambda: mesh.materials.pop(index=len(mesh.materials) - 1))
        return
    slot = obj.material_slots[obj.active_material_index if slot_index is None else slot_index]
    if slot.link == "DATA" and _shared_mesh(obj):
        changes.set(slot, "link", "OBJECT")  # the other objects using this mesh keep their material
    changes.set(slot, "material", material)


def target_material(changes: Changes, obj: bpy.types.Object,
                    new_material: Callable[[], bpy.types.Material]) -> bpy.types.Material:
    """``obj``'s active material (made to use nodes), or ``new_material()`` put in its active slot."""
    material = obj.active_material
    if material is None:
        material = new_material()
        assign_to_active_slot(changes, obj, material)
    else:
        use_nodes(changes, material)
    return material


def use_nodes(changes: Changes, material: bpy.types.Material) -> None:
    """A material without a node tree (or, before Blender 5, with nodes off) gets one."""
    if material.node_tree is None or (bpy.app.version < (5, 0, 0) and not material.use_nodes):
        changes.set(material, "use_nodes", True)


def apply_to_material(changes: Changes, obj: bpy.types.Object | None, image: bpy.types.Image,
                      keep_history: bool = False) -> bpy.types.Material:
    """The image on ``obj``'s active material; a mesh without UVs gets box projection so it shows at all."""
    if obj is None or obj.type != "MESH":
        raise ValueError("Target is Material but the active object is not a mesh: select a mesh object")
    material = target_material(changes, obj, lambda: changes.new_material(MATERIAL_NAME))
    add_image_to_base_color(changes, material, image, box_projection=len(obj.data.uv_layers) == 0,
                            keep_history=keep_history)
    return material


def apply_projection(changes: Changes, objects: list[tuple[bpy.types.Object, np.ndarray]], image: bpy.types.Image,
                     uv_name: str, keep_history: bool = False) -> list[str]:
    """Each object's UVs (captured at the start) into its UV map ``uv_name``, and the image on its own material.

    Returns one line per object that could not take the projection (the others are written).
    """
    problems: list[str] = []
    new_material: list[bpy.types.Material] = []
    wired: set[str] = set()

    def shared_new_material() -> bpy.types.Material:
        if not new_material:
            new_material.append(changes.new_material(MATERIAL_NAME))
        return new_material[0]

    for obj, uvs in objects:
        mesh = obj.data
        if len(uvs) != len(mesh.loops):
            problems.append(f"'{obj.name}' was edited while generating (its faces changed): not projected")
            continue
        if mesh.uv_layers.get(uv_name) is None and len(mesh.uv_layers) >= projection.MAX_UV_MAPS:
            problems.append(f"'{obj.name}' already has {projection.MAX_UV_MAPS} UV maps (Blender's limit): "
                            "not projected")
            continue
        if _shared_mesh(obj):
            mesh = changes.single_user_mesh(obj)
        layer = mesh.uv_layers.get(uv_name)
        previous = None
        if layer is not None:
            previous = np.empty(len(mesh.loops) * 2, dtype=np.float32)
            layer.data.foreach_get("uv", previous)
        projection.write_uv_layer(mesh, uvs, uv_name)
        changes.on_rollback(_uv_undo(mesh, uv_name, previous))
        material = target_material(changes, obj, shared_new_material)
        if material.name not in wired:
            add_image_to_base_color(changes, material, image, uv_map=uv_name, keep_history=keep_history)
            wired.add(material.name)
    return problems


def _uv_undo(mesh: bpy.types.Mesh, name: str, previous: np.ndarray | None) -> Callable[[], None]:
    def undo() -> None:
        layer = mesh.uv_layers.get(name)
        if layer is None:
            return
        if previous is not None:
            layer.data.foreach_set("uv", previous)
        else:
            mesh.uv_layers.remove(layer)
    return undo
