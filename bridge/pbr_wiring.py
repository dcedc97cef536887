"""Material maps into the material (issue 30): the map images, and the nodes that plug them into the shader.

Where the lit image shows as Base Color (an Image Texture node linked into a shader's Base Color or
Color), its maps go in beside it, on the add-on's marked nodes (``results.NODE_MARKER``, Keep History
rules as for the colour):

- Base Color <- albedo (sRGB). The lit image's node stays in the material, unlinked: one link back.
- Roughness, Metallic <- their grey (R = G = B) Non-Color maps: the glTF exporter packs both into one
  metallic-roughness image and reads one channel each.
- Normal <- a Normal Map node (Tangent Space, the UV map the texture uses) <- the normal map (Non-Color).
- Height -> a Displacement node (midlevel 0.5, scale ``HEIGHT_SCALE``) -> the Material Output's
  Displacement, the material's displacement method Bump Only. Never a Bump node in front of the
  shader's Normal: the glTF exporter then exports the height image as the normal texture.

Every map node reads the same texture coordinates as the lit image's node (its Vector link and
projection): the maps line up with the colour wherever it came from. Everything goes through one
``results.Changes``: the caller rolls back on error.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import pixels, results

MAPS = ("albedo", "roughness", "metallic", "normal", "height")
# Bump Only: the height's relief in metres at white (0.5 = none); a few centimetres suit a 1-2 m object.
HEIGHT_SCALE = 0.05
_ROLE_PREFIX = "map:"
_NORMAL_MAP_ROLE = "map:normal_map"
_DISPLACEMENT_ROLE = "map:displacement"
_SHADER_SOCKETS = {"albedo": ("Base Color", "Color"), "roughness": ("Roughness",), "metallic": ("Metallic",)}
_FLOAT_MAPS = ("normal", "height")  # more than 8 bits: float images, packed as OpenEXR
_NODE_SPACING = 300.0


def map_image_name(source_name: str, kind: str) -> str:
    return f"{source_name} {kind}"


def new_map_image(changes: results.Changes, source_name: str, kind: str, array: np.ndarray,
                  recipe: dict) -> bpy.types.Image:
    """The packed map image ``<source> <kind>``: albedo a byte sRGB image; roughness and metallic byte
    Non-Color grey (R = G = B); normal (0..1 colours) and height float Non-Color. The colour space is set
    before the pixels are written (setting Non-Color afterwards wiped them, on both Blender lines)."""
    if kind not in MAPS:
        raise ValueError(f"kind must be one of {', '.join(MAPS)}; got {kind!r}")
    array = np.asarray(array, dtype=np.float32)
    if kind == "albedo":
        image = changes.new_image(map_image_name(source_name, kind), array[..., :3])
    else:
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"the {kind} map must have shape (h, w) or (h, w, 3), got {array.shape}")
        height, width = array.shape[:2]
        image = bpy.data.images.new(map_image_name(source_name, kind), width=width, height=height, alpha=False,
                                    float_buffer=kind in _FLOAT_MAPS)
        changes.on_rollback(lambda: bpy.data.images.remove(image))
        image.colorspace_settings.name = "Non-Color"
        pixels.write_pixels(image, np.clip(array, 0.0, 1.0))
    image[results.RECIPE_PROPERTY] = recipe
    image.pack()
    return image


def base_color_users(image: bpy.types.Image) -> list[tuple[bpy.types.Material, bpy.types.Node, bpy.types.Node]]:
    """(material, image node, shader) wherever ``image`` shows as a shader's Base Color (or Color): its node
    feeds it directly, or the albedo map made from it earlier does (the maps are being made again)."""
    users = []
    for material in bpy.data.materials:
        if material.node_tree is None:
            continue
        nodes = [n for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == image]
        if not nodes:
            continue
        feeders = nodes + [n for n in material.node_tree.nodes
                           if n.type == "TEX_IMAGE" and n.get(results.NODE_MARKER) == _ROLE_PREFIX + "albedo"
                           and n.image is not None and _source_of(n.image) == image.name]
        for node in feeders:
            shader = next((link.to_node for link in node.outputs["Color"].links
                           if link.to_socket.name in _SHADER_SOCKETS["albedo"]
                           and link.to_node.type.startswith("BSDF")), None)
            if shader is not None:
                users.append((material, nodes[0], shader))
                break
    return users


def _source_of(map_image: bpy.types.Image) -> str | None:
    recipe = map_image.get(results.RECIPE_PROPERTY)
    return None if recipe is None else recipe.get("pbr_source")


def wire_maps(changes: results.Changes, material: bpy.types.Material, source_node: bpy.types.Node,
              shader: bpy.types.Node, images: dict[str, bpy.types.Image], uv_map: str | None,
              keep_history: bool = False) -> list[str]:
    """``images`` (by map kind) into ``material`` around ``shader``, beside the lit image's ``source_node``.

    ``uv_map``: the Normal Map node's UV map (Whole Object, PROJECT), None for a flat texture (the
    node's default, the active render UV map). Returns the maps the shader has no socket for.
    """
    tree = material.node_tree
    skipped = []
    row = 0
    for kind in MAPS:
        image = images.get(kind)
        if image is None:
            continue
        node = _map_node(changes, tree, kind, source_node, row, keep_history)
        row += 1
        changes.set(node, "image", image)
        if kind in _SHADER_SOCKETS:
            socket = _input(shader, _SHADER_SOCKETS[kind])
            if socket is None:
                skipped.append(kind)
                continue
            changes.link(tree, node.outputs["Color"], socket)
        elif kind == "normal":
            socket = shader.inputs.get("Normal")
            if socket is None:
                skipped.append(kind)
                continue
            normal_map = _helper(changes, tree, "ShaderNodeNormalMap", _NORMAL_MAP_ROLE, node, keep_history)
            changes.set(normal_map, "space", "TANGENT")
            changes.set(normal_map, "uv_map", uv_map or "")
            changes.link(tree, node.outputs["Color"], normal_map.inputs["Color"])
            changes.link(tree, normal_map.outputs["Normal"], socket)
        else:  # height
            output = _material_output(tree)
            if output is None:
                skipped.append(kind)
                continue
            displacement = _helper(changes, tree, "ShaderNodeDisplacement", _DISPLACEMENT_ROLE, node, keep_history)
            changes.set(displacement, "space", "OBJECT")
            displacement.inputs["Midlevel"].default_value = 0.5
            displacement.inputs["Scale"].default_value = HEIGHT_SCALE
            changes.link(tree, node.outputs["Color"], displacement.inputs["Height"])
            changes.link(tree, displacement.outputs["Displacement"], output.inputs["Displacement"])
            changes.set(material, "displacement_method", "BUMP")
    return skipped


def _input(shader: bpy.types.Node, names: tuple[str, ...]):
    return next((shader.inputs[name] for name in names if shader.inputs.get(name) is not None), None)


def _material_output(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    outputs = [n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"]
    return next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)


def _map_node(changes: results.Changes, tree: bpy.types.NodeTree, kind: str, source_node: bpy.types.Node,
              row: int, keep_history: bool) -> bpy.types.Node:
    """The add-on's Image Texture node of this map (reused, its old image released once unused; a new one
    with Keep History), reading the lit image node's texture coordinates."""
    role = _ROLE_PREFIX + kind
    ours = [n for n in tree.nodes if n.type == "TEX_IMAGE" and n.get(results.NODE_MARKER) == role]
    node = None if keep_history or not ours else ours[-1]
    if node is None:
        node = changes.new_node(tree, "ShaderNodeTexImage")
        node[results.NODE_MARKER] = role
        node.label = f"{results.IMAGE_NODE_LABEL} {kind}"
        node.location = (source_node.location.x, source_node.location.y - (row + 1 + len(ours)) * _NODE_SPACING)
    else:
        previous = node.image
        if previous is not None:
            changes.when_done(lambda: results.release_image(previous))
    changes.set(node, "interpolation", source_node.interpolation)
    changes.set(node, "projection", source_node.projection)
    changes.set(node, "extension", source_node.extension)
    vector = source_node.inputs["Vector"]
    if vector.is_linked:
        changes.link(tree, vector.links[0].from_socket, node.inputs["Vector"])
    elif node.inputs["Vector"].is_linked:
        changes.unlink(tree, node.inputs["Vector"])
    return node


def _helper(changes: results.Changes, tree: bpy.types.NodeTree, node_type: str, role: str,
            texture: bpy.types.Node, keep_history: bool) -> bpy.types.Node:
    """The Normal Map / Displacement node between a map and the shader: the one the map's node feeds already,
    else the add-on's last one (unless Keep History), else a new one."""
    for link in texture.outputs["Color"].links:
        if link.to_node.get(results.NODE_MARKER) == role:
            return link.to_node
    ours = [n for n in tree.nodes if n.get(results.NODE_MARKER) == role]
    if ours and not keep_history:
        return ours[-1]
    node = changes.new_node(tree, node_type)
    node[results.NODE_MARKER] = role
    node.location = (texture.location.x + _NODE_SPACING, texture.location.y)
    return node
