"""A minimal blocking MQTT 3.1.1 publisher (QoS 0) for the benchmark: no library in the timing path.

Only what the publisher needs: CONNECT with keepalive 0 (no pings to schedule), PUBLISH QoS 0,
optionally retained. Payload timing matters more than features here.
"""

from __future__ import annotations

import socket


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


def connect_packet(client_id: str) -> bytes:
    """CONNECT, clean session, keepalive 0."""
    body = _string(b"MQTT") + b"\x04\x02\x00\x00" + _string(client_id.encode())
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, retain: bool = False) -> bytes:
    """PUBLISH QoS 0."""
    body = _string(topic) + payload
    return (b"\x31" if retain else b"\x30") + _length(len(body)) + body


class Publisher:
    """One blocking connection to the broker."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        ack = self.sock.recv(4)
        if len(ack) < 4 or ack[0] != 0x20 or ack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {ack!r}")

    def publish(self, topic: bytes, payload: bytes, retain: bool = False) -> None:
        """Send one QoS 0 message."""
        self.sock.sendall(publish_packet(topic, payload, retain))

    def close(self) -> None:
        """DISCONNECT and close."""
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()
