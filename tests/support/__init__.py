"""Helpers and fixtures shared by every tier (registered in tests/conftest.py)."""
