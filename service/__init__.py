"""Appwrite token exchange: an httpOnly session cookie in, a short-lived Realtime credential out."""

# The only place the version is written: pyproject.toml reads it (setuptools' attr:), and
# scripts/release and tests/test_release.py hold clients/js/package.json, the image tag and the
# release tag to it.
__version__ = "0.1.0"
