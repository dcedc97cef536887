"""A recording stand-in for ``UILayout``, checked against real RNA.

A UILayout cannot be created without a window, so panel and preferences
``draw()`` get this instead: every ``prop`` must name a real property of the
real data, every ``operator`` a registered operator (and every property set on
it a real one), every icon a real icon. Typos and stale names fail the test.
"""

import bpy

ICONS = set(bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items.keys())


class RecordingLayout:
    def __init__(self, log):
        self.log = log
        self.use_property_split = False
        self.use_property_decorate = True
        self.scale_y = 1.0
        self.active = True
        self.enabled = True

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    column = row = box = split = grid_flow = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.log.append(("prop", name))

    def label(self, text="", icon="NONE", **kwargs):
        assert icon in ICONS, icon
        self.log.append(("label", text, icon))

    def operator(self, idname, text="", icon="NONE", **kwargs):
        assert icon in ICONS, icon
        category, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, category), name).get_rna_type()  # raises if not registered
        self.log.append(("operator", idname))
        return OperatorProperties(rna, self.log)

    def template_ID(self, data, name, **kwargs):
        assert data.bl_rna.properties[name].type == "POINTER"
        self.log.append(("template_ID", name))

    def template_list(self, list_type, list_id, data, name, active_data, active_name, **kwargs):
        assert isinstance(getattr(bpy.types, list_type, None), type), f"UIList {list_type!r} is not registered"
        assert data.bl_rna.properties[name].type == "COLLECTION"
        assert active_data.bl_rna.properties[active_name].type == "INT"
        self.log.append(("template_list", name))

    def progress(self, factor=0.0, type="BAR", text=""):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", factor, text))


class OperatorProperties:
    def __init__(self, rna, log):
        self.__dict__.update(rna=rna, log=log)

    def __setattr__(self, name, value):
        assert name in self.rna.properties, f"{self.rna.identifier} has no property {name!r}"
        self.log.append(("set", name, value))
