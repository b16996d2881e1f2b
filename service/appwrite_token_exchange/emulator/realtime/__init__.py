"""The emulator's Appwrite Realtime: WebSocket handshake, client frames, and event delivery."""
