"""Named training recipes, stored as data."""
