"""Whole Object: several views around the selected objects, baked into their UV maps."""

import bpy

OBJECT_METHOD_ITEMS = (
    ("GRID", "Grid", "The views tiled into grids of Size X x Y, at most four to a grid, each generated at once "
                     "(one palette, one lighting)"),
    ("SEQUENTIAL", "Sequential", "View by view, each inpainting what earlier views did not cover well"),
    ("SYNC", "Sync", "All views denoised together through one latent texture in UV space: they agree where they "
                     "meet (DPM++ 2M, DDIM, Euler or UniPC)"),
)

COLOR_MATCH_ITEMS = (
    ("NONE", "None", "Each view keeps the colours it was generated with"),
    ("HISTOGRAM", "Histogram", "Each later view's colour histograms (lightness and hue, per channel) mapped onto "
                               "those of the earlier views where they show the same surface"),
    ("REINHARD", "Reinhard", "Each later view's mean colour and contrast (per channel) moved onto those of the "
                             "earlier views where they show the same surface: gentler than Histogram"),
)

SYNC_ATTENTION_ITEMS = (
    ("NONE", "None", "Each view's self-attention sees only the view itself (measured: cross-view attention did not "
                     "make the views agree more, and costs time)"),
    ("NEIGHBOURS", "Neighbours", "Each view's self-attention also sees the two views that share the most surface "
                                 "with it, at every step"),
    ("NEIGHBOURS_REFERENCE", "Neighbours + View 1", "As Neighbours, and in the first fifth of the steps every view "
                                                    "also looks at view 1 (SyncMVD's reference view)"),
)


class WholeObjectSettings:
    """The Whole Object rows (shown when Target is Whole Object)."""

    object_views: bpy.props.IntProperty(
        name="Views", description="Whole Object: how many views are placed around the selected objects",
        default=6, min=1, max=16,
    )
    view_collection: bpy.props.PointerProperty(
        name="View Collection", type=bpy.types.Collection,
        description="Whole Object: use this collection's cameras (in name order) as the views instead",
    )
    object_method: bpy.props.EnumProperty(
        name="Method", description="Whole Object: how the views are generated",
        items=OBJECT_METHOD_ITEMS, default="GRID",
    )
    sync_fraction: bpy.props.FloatProperty(
        name="Sync Fraction", min=0.0, max=1.0, default=0.8, subtype="FACTOR",
        description="Whole Object, Method Sync: the first round(this x Steps) denoising steps are synchronised; "
                    "the rest are ordinary per-view steps",
    )
    sync_attention: bpy.props.EnumProperty(
        name="Cross-View Attention", items=SYNC_ATTENTION_ITEMS, default="NONE",
        description="Whole Object, Method Sync: what each view's self-attention also looks at",
    )
    texture_size: bpy.props.IntProperty(
        name="Texture Size", description="Whole Object: width and height of each object's baked texture",
        default=2048, min=256, max=8192, subtype="PIXEL",
    )
    keep_view_images: bpy.props.BoolProperty(
        name="Keep View Images",
        description="Whole Object: keep each view's generated image and control image as packed images",
        default=False,
    )
    color_match: bpy.props.EnumProperty(
        name="Color Match", items=COLOR_MATCH_ITEMS, default="NONE",
        description="Whole Object, Method Grid or Sequential: match each later view's colours to the views before "
                    "it on the surface they share, before baking (Sync's views agree already)",
    )
