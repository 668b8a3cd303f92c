"""Reference data shipped with risk.scoring (see README.md)."""
