"""What the notebooks show: plots, live feedback while training, notebook support, the published
results and the RUN switch.

Layer of docs/code_map.md; see there for what may import what.
"""
