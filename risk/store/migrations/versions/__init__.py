"""Migration scripts, one per schema version (``0001_initial`` first)."""
