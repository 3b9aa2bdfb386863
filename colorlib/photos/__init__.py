"""Colour and image files: Lab conversion, reading and writing photos, the embedded tiny set, and
the metrics that compare two photos.

Layer of docs/code_map.md; see there for what may import what.
"""
