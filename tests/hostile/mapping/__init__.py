"""Hostile mapping files: each must stop ``validate`` with exit 2 naming the key, no traceback."""
