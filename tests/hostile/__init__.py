"""Hostile input files for the CLI: generated at test time, never committed."""
