"""A local emulator of Chargebee's order endpoints. Shares no code with ``pipeline``."""
