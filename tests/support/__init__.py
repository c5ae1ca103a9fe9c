"""Test infrastructure shared by the integration suites (real Mosquitto, real gateway)."""
