"""Revisions of the run store's schema, oldest first."""
