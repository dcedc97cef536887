"""Whole Object's textures on the materials (issue 23): every material the mesh's faces use gets its mesh's
texture through a UV Map node naming the baked UV map (``results.add_image_to_base_color``: the shader and
Keep History rules of ``MATERIAL``). A material that objects outside the selection also use is left as it
is and named in the report. Everything goes through one ``results.Changes``: the caller rolls back on error.
"""

from __future__ import annotations

from typing import Callable

import bpy
import numpy as np

from . import results


def used_slots(obj: bpy.types.Object) -> list[int]:
    """The material slots the evaluated object's faces use (an index past the last slot draws with the last
    slot, as Blender does); the active slot for an object without faces; [] without slots."""
    slots = len(obj.material_slots)
    if slots == 0:
        return []
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        indices = np.empty(len(mesh.polygons), dtype=np.int32)
        mesh.polygons.foreach_get("material_index", indices)
    finally:
        evaluated.to_mesh_clear()
    if not len(indices):
        return [min(obj.active_material_index, slots - 1)]
    return sorted({min(int(index), slots - 1) for index in np.unique(indices)})


def face_materials(changes: results.Changes, obj: bpy.types.Object,
                   new_material: Callable[[], bpy.types.Material]) -> list[bpy.types.Material]:
    """The materials ``obj``'s faces show, in slot order; a used slot without a material (or an object without
    slots) gets ``new_material()``."""
    slots = used_slots(obj)
    if not slots:
        material = new_material()
        results.assign_to_active_slot(changes, obj, material)
        return [material]
    materials = []
    for index in slots:
        material = obj.material_slots[index].material
        if material is None:
            material = new_material()
            results.assign_to_active_slot(changes, obj, material, slot_index=index)
        if material not in materials:
            materials.append(material)
    return materials


def outside_users(selected: list[bpy.types.Object]) -> dict[str, list[str]]:
    """Material name -> the objects outside ``selected`` that have it in a slot."""
    inside = {obj.session_uid for obj in selected}
    users: dict[str, list[str]] = {}
    for obj in bpy.data.objects:
        if obj.session_uid in inside:
            continue
        for slot in obj.material_slots:
            if slot.material is not None and obj.name not in users.setdefault(slot.material.name, []):
                users[slot.material.name].append(obj.name)
    return users


def wire_textures(changes: results.Changes, textures: list[tuple[bpy.types.Image, object]],
                  objects: dict[str, bpy.types.Object | None], keep_history: bool) -> list[str]:
    """Each mesh's texture (``textures``: (image, ``BakedMesh``)) on every material its objects' faces use.

    ``objects``: the captured object names -> the object now (None: deleted). Returns one line per thing not
    done: a deleted object, a material shared by two meshes, a material also used outside the selection.
    """
    problems: list[str] = []
    outside = outside_users([obj for obj in objects.values() if obj is not None])
    wired: dict[str, bpy.types.Image] = {}
    left: list[str] = []
    for texture, baked in textures:
        new_material: list[bpy.types.Material] = []

        def shared_new_material() -> bpy.types.Material:
            if not new_material:  # one new material per mesh, shared by its objects
                new_material.append(changes.new_material(results.MATERIAL_NAME))
            return new_material[0]

        for name in baked.object_names:
            obj = objects.get(name)
            if obj is None:
                problems.append(f"'{name}' was deleted while generating: it did not get the texture")
                continue
            for material in face_materials(changes, obj, shared_new_material):
                if outside.get(material.name):
                    if material.name not in left:
                        left.append(material.name)
                    continue
                if material.name in wired:
                    if wired[material.name] != texture:
                        problems.append(f"'{obj.name}' shares material '{material.name}' with an object of another "
                                        f"mesh: it shows '{wired[material.name].name}' (give it a material of its own)")
                    continue
                results.use_nodes(changes, material)
                results.add_image_to_base_color(changes, material, texture, uv_map=baked.uv_name,
                                                keep_history=keep_history)
                wired[material.name] = texture
    for name in left:
        users = ", ".join(f"'{user}'" for user in outside[name])
        problems.append(f"material '{name}' is also used by {users}, not selected: it was left unchanged (select "
                        "them too, or give the selected objects a material of their own)")
    return problems
