"""pandera schemas for import_order / update-order rows. Imports nothing from ``pipeline``."""
