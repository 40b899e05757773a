"""Lambda handlers of the wallet domain."""
