"""colorlib: colorize black-and-white photos with deep learning.

The engine behind the notebook series: Lab colour (``lab``), image files
(``images``), data (``data``, ``tiny``), networks (``networks``), losses
(``losses``), training (``train``), checkpoints (``checkpoint``), inference
(``inference``) and plots (``figures``). Heavy modules import lazily.
"""
__version__ = "0.1.0"
