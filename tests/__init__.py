"""Tests, mirroring the package tree; fixtures in conftest.py."""
