"""Lambda handlers of the claims domain."""
