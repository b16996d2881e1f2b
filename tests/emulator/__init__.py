"""Tests of the Appwrite emulator that ships in appwrite_token_exchange.emulator."""
