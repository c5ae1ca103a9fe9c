"""Simulated traffic-signal controllers for signal_gateway (docs/simulator.md).

``simulator.plan`` (pure signal timing and ground truth), ``simulator.faults`` (pure fault
descriptions), ``simulator.controllers`` (the MQTT connections), ``simulator.cli`` (the command).
"""
