"""Lambda handlers of the notifications domain."""
