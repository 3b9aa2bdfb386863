"""Test stand-in for Colab's ``google.colab`` (see tests/fake_colab/README.md)."""
from . import drive, files  # noqa: F401  (Colab's package has both)
