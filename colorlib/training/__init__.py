"""What a run needs around the algorithm: its settings, the loop, the stage runner, checkpoints,
run safety, multi-GPU and the cost estimate.

Layer of docs/code_map.md; see there for what may import what.
"""
