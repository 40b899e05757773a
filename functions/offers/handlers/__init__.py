"""Lambda handlers of the offers domain."""
