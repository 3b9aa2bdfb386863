"""The networks, the losses, the stage table and the training algorithms (pix2pix, L1 pretraining,
colour classes).

Layer of docs/code_map.md; see there for what may import what.
"""
