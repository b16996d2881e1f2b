"""Tests of the Appwrite emulator that ships in service.emulator."""
