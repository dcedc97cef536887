"""bpy <-> engine translation used by the operators (main thread only)."""
