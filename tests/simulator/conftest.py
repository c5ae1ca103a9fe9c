"""The simulator tests use the shared fixtures of tests/conftest.py (registry, mosquitto)."""
