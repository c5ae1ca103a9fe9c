"""Fault and bad-input suite (issue 5): real Mosquitto, real gateway, judged numbers."""
