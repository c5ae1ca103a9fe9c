"""signal_gateway: live traffic-signal countdowns from MQTT controllers to WebSocket clients."""

__version__ = "0.1.0"
