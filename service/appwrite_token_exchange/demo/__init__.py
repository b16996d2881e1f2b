"""`token-exchange demo`: the emulator with a demo user, the service in front of it (`run`), and the
demo site that signs in and opens Realtime through the helper (`site`, `static/`)."""
