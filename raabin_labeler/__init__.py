"""Raabin Labeler: label white blood cells on peripheral blood smear photos."""

__version__ = "0.1.0"
