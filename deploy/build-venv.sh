#!/bin/sh
# Build the project's wheel and install it into a fresh virtual environment.
#
#   sh deploy/build-venv.sh VENV_DIR
#
# Run from the root of the build context (the repository, or deploy/Dockerfile's WORKDIR).
# deploy/Dockerfile runs this in its builder stage; deploy/check.sh runs the very same
# script on the host, so the image's install steps are proven without Docker.
# PYTHON names the interpreter (default: python); the venv uses it.
set -eu

venv="${1:?usage: build-venv.sh VENV_DIR}"
python="${PYTHON:-python}"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT

# The wheel, built in an isolated build environment (setuptools from pyproject.toml).
"$python" -m pip wheel --no-cache-dir --no-deps --wheel-dir "$wheels" .

# A venv without pip of its own: the runtime image needs no installer. The outer pip
# installs into it; it byte-compiles everything, so a read-only root needs no .pyc writes.
"$python" -m venv --without-pip "$venv"
"$python" -m pip --python "$venv/bin/python" install --no-cache-dir "$wheels"/*.whl

# The console script resolves and the package imports with its dependencies.
"$venv/bin/token-exchange" --help >/dev/null
"$venv/bin/python" -c "import service.app, service.cli"
