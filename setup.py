"""The one build step pyproject.toml cannot express: the demo page's browser code.

`token-exchange demo` serves a page that imports the official Appwrite web SDK and the project's
browser helper, so the wheel carries both, in appwrite_token_exchange/demo/vendor/, laid out as a
pruned node_modules (each package's package.json, licence and the files the page imports) next to
realtime-auth.js. They come from, in this order:

1. vendor/ already in the source tree: an sdist made by this step. Used as it is.
2. A checkout (clients/js/package-lock.json): the exact versions that lock pins, from
   clients/js/node_modules when `npm ci` put them there, else fetched with `npm pack` and checked
   against the lock's integrity hashes. The helper is clients/js/realtime-auth.js.
3. Neither (the image's builder copies service/ only), or a checkout without npm: no vendor/. The
   image runs `serve`; a demo page without its browser code says what is missing and how to fix it.

Editable installs skip the step: the demo then reads clients/js itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
CLIENTS = ROOT / "clients" / "js"
VENDOR = Path("appwrite_token_exchange", "demo", "vendor")
# What the page imports of each npm package (the SDK's ESM build and its one import chain), with the
# package.json the demo reads the version from and the licence that must travel with the code.
PAGE_FILES = {
    "appwrite": ("package.json", "LICENSE", "dist/esm/sdk.js"),
    "bignumber.js": ("package.json", "LICENCE.md", "bignumber.mjs"),
    "json-bigint": ("package.json", "LICENSE", "lib/parse.js", "lib/stringify.js"),
}
# The browser helper's modules: the helper, and the shared mode's page side and hub.
HELPER_MODULES = ("realtime-auth.js", "realtime-hub.js", "shared-realtime.js")


def vendor_files() -> list[Path]:
    """Every file of vendor/, relative to it."""
    page_files = [Path(name, part) for name, parts in PAGE_FILES.items() for part in parts]
    return page_files + [Path(name) for name in HELPER_MODULES]


def locked_packages() -> dict[str, dict[str, str]]:
    """{name: {"version", "integrity"}} of the page's packages, as clients/js's lock pins them."""
    lock = json.loads((CLIENTS / "package-lock.json").read_text("utf-8"))
    return {name: lock["packages"][f"node_modules/{name}"] for name in PAGE_FILES}


def installed_version(package_dir: Path) -> str | None:
    try:
        return str(json.loads((package_dir / "package.json").read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def npm_pack(name: str, locked: dict[str, str], work: Path) -> Path:
    """The locked release of `name`, fetched by npm, checked against the lock's hash, unpacked."""
    command = ["npm", "pack", f"{name}@{locked['version']}", "--json", "--pack-destination", str(work)]
    # npm from PATH, as the user installed it; the arguments are the lock's name and version.
    answer = subprocess.run(command, check=True, capture_output=True, text=True, cwd=work)  # noqa: S603
    tarball = work / json.loads(answer.stdout)[0]["filename"]
    algorithm, _, expected = locked["integrity"].partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise RuntimeError(f"{tarball.name}: its {algorithm} is not the one clients/js/package-lock.json pins")
    unpacked = work / name
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "package"


def collect_vendor(target: Path) -> str:
    """Write vendor/ into `target` from a checkout; the returned line says where it came from."""
    if not (CLIENTS / "package-lock.json").is_file():
        return "no clients/js here (the image's builder): built without the demo's browser code"
    locked = locked_packages()
    with tempfile.TemporaryDirectory() as scratch:
        sources, fetched = {}, []
        for name, pinned in locked.items():
            installed = CLIENTS / "node_modules" / name
            if installed_version(installed) == pinned["version"]:
                sources[name] = installed
                continue
            if shutil.which("npm") is None:
                return "no npm to fetch the web SDK: built without the demo's browser code (install Node.js 20+)"
            sources[name] = npm_pack(name, pinned, Path(scratch))
            fetched.append(name)
        shutil.rmtree(target, ignore_errors=True)
        for name, parts in PAGE_FILES.items():
            for part in parts:
                (target / name / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sources[name] / part, target / name / part)
    for name in HELPER_MODULES:
        shutil.copyfile(CLIENTS / name, target / name)
    pins = ", ".join(f"{name} {pinned['version']}" for name, pinned in locked.items())
    source = f"fetched with npm pack: {', '.join(fetched)}" if fetched else "from clients/js/node_modules"
    return f"demo browser code: {pins} ({source})"


def complete(directory: Path) -> bool:
    return all((directory / path).is_file() for path in vendor_files())


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode or complete(ROOT / "service" / VENDOR):
            return  # editable: the demo reads clients/js; an sdist: package data brought vendor/
        print(collect_vendor(Path(self.build_lib) / VENDOR), file=sys.stderr)


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir, "service") / VENDOR
        if not complete(target):
            print(collect_vendor(target), file=sys.stderr)


if __name__ == "__main__":  # as the build backend runs it; tools/release/checks.py reads vendor_files()
    setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
