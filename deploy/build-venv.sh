#!/bin/sh
# Build the project's wheel and install it, with its locked dependencies, into a fresh venv.
#
#   sh deploy/build-venv.sh VENV_DIR
#
# Run from the root of the build context (the repository, or deploy/Dockerfile's WORKDIR).
# deploy/Dockerfile runs this in its builder stage; deploy/check.sh runs the very same
# script on the host, so the image's install steps are proven without Docker.
# PYTHON names the interpreter (default: python); the venv uses it.
# Every package comes from the lock files (locks/build.txt, locks/runtime.txt) with its hash
# checked: an image built next month holds exactly what the tests ran against.
set -eu

venv="${1:?usage: build-venv.sh VENV_DIR}"
python="${PYTHON:-python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pip_options="--no-cache-dir --disable-pip-version-check --require-hashes"

# The wheel, built by the locked build backend in a throwaway venv.
"$python" -m venv "$work/build"
# shellcheck disable=SC2086 # pip_options is a list of flags
"$work/build/bin/python" -m pip install --quiet $pip_options -r locks/build.txt
"$work/build/bin/python" -m pip wheel --quiet --no-cache-dir --no-deps --no-build-isolation \
    --wheel-dir "$work/wheels" .

# A venv without pip of its own: the runtime image needs no installer. The outer pip
# installs into it; it byte-compiles everything, so a read-only root needs no .pyc writes.
"$python" -m venv --without-pip "$venv"
# shellcheck disable=SC2086
"$python" -m pip --python "$venv/bin/python" install $pip_options --no-deps -r locks/runtime.txt
# The project itself: its dependencies are all installed above, so none is resolved anew.
"$python" -m pip --python "$venv/bin/python" install --no-cache-dir --disable-pip-version-check \
    --no-deps "$work"/wheels/*.whl
"$python" -m pip --python "$venv/bin/python" check --disable-pip-version-check

# The console script resolves and the package imports with its dependencies.
"$venv/bin/token-exchange" --help >/dev/null
"$venv/bin/python" -c "import appwrite_token_exchange.app, appwrite_token_exchange.cli"
