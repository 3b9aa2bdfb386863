"""colorlib: colorize black-and-white photos with deep learning.

The engine behind the notebook series, in one folder per layer (docs/code_map.md):
``system`` (environment, files, device), ``photos`` (Lab colour, image files, metrics),
``data`` (sources and batches), ``models`` (networks, losses, the algorithms), ``training``
(the loop, the stage runner, checkpoints), ``inference`` (colorizing, evaluation) and
``teaching`` (figures, notebook support); ``cli`` and ``demo`` on top. Importing
``colorlib`` imports none of them: each is imported where it is used.
"""
__version__ = "0.1.0"
