"""What every layer may use, knowing nothing of colour or models: environment variables, atomic
file writes, malloc settings, the device policy.

Layer of docs/code_map.md; see there for what may import what.
"""
