"""Packaged reference tables (data files read through importlib.resources)."""
