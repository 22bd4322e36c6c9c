"""automix."""
