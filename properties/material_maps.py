"""Material Maps: albedo, roughness, metallic, normal and height maps made with each result (issue 30)."""

import bpy

# The same items for the scene setting and the material_maps operator's ``maps``.
PBR_MAP_ITEMS = (
    ("ALBEDO", "Albedo", "The colour without the light and shadows the model painted in: the Base Color", 1),
    ("ROUGHNESS", "Roughness", "Grey map into the Roughness", 2),
    ("METALLIC", "Metallic", "Grey map into the Metallic", 4),
    ("NORMAL", "Normal", "Tangent-space normal map through a Normal Map node into the Normal", 8),
    ("HEIGHT", "Height", "Flat textures only: height through a Displacement node (Bump Only) into the Material "
                         "Output's Displacement", 16),
)


class MaterialMapsSettings:
    """The Material Maps section."""

    pbr_maps: bpy.props.EnumProperty(
        name="Material Maps",
        description="Maps made from each new result and wired into its material (none: colour only)",
        items=PBR_MAP_ITEMS, options={"ENUM_FLAG"}, default=set(),
    )
    pbr_model: bpy.props.StringProperty(
        name="Intrinsics Model",
        description="The Marigold intrinsics model for albedo, roughness and metallic (repo id or diffusers "
                    "folder); empty: prs-eth/marigold-iid-appearance-v1-1 (about 2.6 GB in half precision)",
        default="",
    )
    normals_model: bpy.props.StringProperty(
        name="Normals Model",
        description="The Marigold normals model for normal and height (repo id or diffusers folder); empty: "
                    "prs-eth/marigold-normals-v1-1 (about 2.6 GB in half precision)",
        default="",
    )
