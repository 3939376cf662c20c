"""Pre-flight: read-only look-ups that hold back rows the site would refuse (docs/preflight.md)."""
