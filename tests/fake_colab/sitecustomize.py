# Colab imports google.colab before any cell runs; so does this stand-in (tests only).
import google.colab  # noqa: F401
