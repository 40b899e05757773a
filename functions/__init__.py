"""Rebates Lambda code: one package per domain plus the shared core."""
