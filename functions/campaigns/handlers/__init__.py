"""Lambda handlers of the campaigns domain."""
