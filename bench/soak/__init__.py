"""Soak run: the whole city, every fault cycling, the gateway's memory curve (outside CI)."""
