"""Appwrite token exchange: an httpOnly session cookie in, a short-lived Realtime credential out."""

__version__ = "0.1.0"
