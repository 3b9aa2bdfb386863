"""Using a trained model: colorizing at full resolution, exports, the output rule and evaluation.

Layer of docs/code_map.md; see there for what may import what.
"""
