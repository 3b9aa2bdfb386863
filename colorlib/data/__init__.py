"""Training data: where the photos come from (sources), and how they become batches of L and ab
(loading).

Layer of docs/code_map.md; see there for what may import what.
"""
