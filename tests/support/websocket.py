"""The WebSocket upgrade request's headers, for tests that open the relay's handshake by hand
(a raw GET, so that they see the answer a browser's socket would get before any upgrade)."""

from __future__ import annotations

HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    # RFC 6455's sample nonce: any 16 bytes in base64 do.
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
