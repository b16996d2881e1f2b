"""The release's checks of its artifacts, one subcommand each, for scripts/release.

Each subcommand prints one line saying what it found, or names what is wrong on stderr and
exits 1. Runs on the development venv's Python (packaging and PyYAML come from locks/dev.txt);
the artifacts are read as archives, never installed here.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "appwrite_token_exchange"
SOURCE = ROOT / "service" / PACKAGE  # the import package, in the project's service/ folder
DEMO_VENDOR = f"{PACKAGE}/demo/vendor/"  # what setup.py adds to the wheel for the demo page
HELPER = ROOT / "clients" / "js"
KUSTOMIZATION = ROOT / "deploy" / "k8s" / "base" / "kustomization.yaml"


class CheckError(Exception):
    pass


# ---- the version ---------------------------------------------------------------------------
def source_version() -> str:
    """The package's __version__ read as setuptools' `attr:` reads it: statically, nothing imported."""
    tree = ast.parse((SOURCE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise CheckError("service/appwrite_token_exchange/__init__.py has no __version__ = '...'")


def written_versions() -> dict[str, str]:
    """Every other place that must carry the version, by where it is written."""
    package = json.loads((HELPER / "package.json").read_text())
    lock = json.loads((HELPER / "package-lock.json").read_text())
    images = yaml.safe_load(KUSTOMIZATION.read_text()).get("images", [])
    tags = [image.get("newTag") for image in images if image.get("name") == "appwrite-token-exchange"]
    return {
        "clients/js/package.json": package.get("version"),
        "clients/js/package-lock.json (version)": lock.get("version"),
        'clients/js/package-lock.json (packages[""])': lock.get("packages", {}).get("", {}).get("version"),
        "deploy/k8s/base/kustomization.yaml (image newTag)": tags[0] if tags else None,
    }


def check_version(tag: str | None) -> str:
    version = source_version()
    wrong = [f"{where} says {found!r}" for where, found in written_versions().items() if found != version]
    if tag is not None and tag != f"v{version}":
        wrong.append(f"the tag is {tag!r}, not 'v{version}'")
    if wrong:
        raise CheckError(f"the version is {version} (service/appwrite_token_exchange/__init__.py) but " + "; ".join(wrong))
    return version


def check_npm_repository(url: str) -> str:
    """npm refuses a provenance statement whose package.json names another repository (E422)."""
    package = json.loads((HELPER / "package.json").read_text())
    repository = package.get("repository")
    declared = repository.get("url", "") if isinstance(repository, dict) else str(repository or "")
    normal = re.sub(r"^git\+|\.git$", "", declared).rstrip("/").lower()
    if normal != url.rstrip("/").lower():
        raise CheckError(
            f"clients/js/package.json has repository.url {declared!r}; npm publish --provenance needs "
            f'"repository": {{"type": "git", "url": "git+{url}.git", "directory": "clients/js"}}'
        )
    return f"clients/js/package.json names {url}"


# ---- the build backend ---------------------------------------------------------------------
def read_lock(path: Path) -> dict[str, tuple[str, Marker | None]]:
    """name -> (version, marker) from a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[str, Marker | None]] = {}
    for entry in re.split(r"\n(?=\S)", path.read_text()):
        first = entry.split("\n", 1)[0].rstrip(" \\")
        if not first or first.startswith("#"):
            continue
        requirement = Requirement(first)
        (spec,) = requirement.specifier
        pins[canonicalize_name(requirement.name)] = (spec.version, requirement.marker)
    return pins


def check_backend(lock: Path) -> str:
    """`python -m build --no-isolation` builds with what is installed: it must be the lock's."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name, (pinned, marker) in read_lock(lock).items():
        if marker is not None and not marker.evaluate():
            continue
        try:
            found = version(name)
        except PackageNotFoundError:
            found = "missing"
        if found != pinned:
            wrong.append(f"{name} {found} (locked: {pinned})")
    if wrong:
        raise CheckError(f"the build backend is not {lock.name}'s: {', '.join(wrong)}; run scripts/install-python")
    return f"build backend as locked in {lock.relative_to(ROOT)}"


# ---- wheel and sdist -----------------------------------------------------------------------
def shipped_files() -> set[str]:
    """What a wheel must hold of the package: every module, the package data pyproject names, and
    the demo page's browser code that setup.py's build step adds."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"][PACKAGE]
    files = {path for path in SOURCE.rglob("*.py") if "__pycache__" not in path.parts}
    for pattern in patterns:
        files |= {path for path in SOURCE.glob(pattern) if path.is_file()}
    return {path.relative_to(SOURCE.parent).as_posix() for path in files} | demo_vendor_files()


def demo_vendor_files() -> set[str]:
    build_step = runpy.run_path(str(ROOT / "setup.py"), run_name="setup")  # defines, does not build
    return {f"{DEMO_VENDOR}{path.as_posix()}" for path in build_step["vendor_files"]()}


def metadata(text: str) -> dict[str, Any]:
    message = HeaderParser().parsestr(text)
    return {"Name": message["Name"], "Version": message["Version"], "Requires-Python": message["Requires-Python"]}


def check_wheel(path: Path, version: str) -> str:
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        info = f"appwrite_token_exchange-{version}.dist-info"
        meta = metadata(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    expected = shipped_files()
    package = {name for name in names if name.startswith(f"{PACKAGE}/")}
    problems = [f"missing {name}" for name in sorted(expected - package)]
    problems += [f"unexpected {name}" for name in sorted(package - expected)]
    problems += [f"unexpected {name}" for name in sorted(names - package) if not name.startswith(f"{info}/")]
    if meta["Version"] != version or meta["Name"] != "appwrite-token-exchange":
        problems.append(f"METADATA says {meta['Name']} {meta['Version']}")
    if not re.search(rf"^token-exchange\s*=\s*{PACKAGE}\.cli:main$", entry_points, re.M):
        problems.append("no console script token-exchange = appwrite_token_exchange.cli:main")
    if f"{info}/licenses/LICENSE" not in names:
        problems.append("no LICENSE in the dist-info")
    if problems:
        raise CheckError(f"{path.name}: " + "; ".join(problems))
    data = sorted(name for name in package if not name.endswith(".py"))
    return f"{path.name}: {len(package)} package files, as the tree has them, with {', '.join(data)}"


def check_sdist(path: Path, version: str) -> str:
    top = f"appwrite_token_exchange-{version}"
    with tarfile.open(path) as sdist:
        names = {member.name for member in sdist.getmembers() if member.isfile()}
        pkg_info = sdist.extractfile(f"{top}/PKG-INFO")
        meta = metadata(pkg_info.read().decode()) if pkg_info else {}
    inside = {name.removeprefix(f"{top}/") for name in names if name.startswith(f"{top}/")}
    needed = {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO"} | {
        f"{SOURCE.parent.relative_to(ROOT).as_posix()}/{name}" for name in shipped_files()
    }
    problems = [f"missing {name}" for name in sorted(needed - inside)]
    if outside := sorted(names - {f"{top}/{name}" for name in inside}):
        problems.append(f"outside {top}/: {outside[:5]}")
    if meta.get("Version") != version:
        problems.append(f"PKG-INFO says version {meta.get('Version')!r}")
    if problems:
        raise CheckError(f"{path.name}: " + "; ".join(problems))
    # setuptools adds its egg-info and setup.cfg, and of tests/ only the tests/test*.py files.
    tests = sum(1 for name in inside if name.startswith("tests/"))
    in_tree = sum(1 for file in (ROOT / "tests").rglob("*") if file.is_file() and "__pycache__" not in file.parts)
    built_from = f"pyproject.toml, README.md, LICENSE, {SOURCE.relative_to(ROOT).as_posix()}/"
    return f"{path.name}: what the wheel is built from ({built_from}); tests/: {tests} of the tree's {in_tree} files"


# ---- the npm tarball -----------------------------------------------------------------------
def check_npm(listing_path: Path, tarball: Path, version: str) -> str:
    (listing,) = json.loads(listing_path.read_text())
    package = json.loads((HELPER / "package.json").read_text())
    listed = {entry["path"] for entry in listing["files"]}
    # What package.json's `files` names, the files its entry points name, package.json, and the
    # licence (npm always packs a LICENSE beside package.json).
    expected = {"package.json", "LICENSE", *package["files"]}
    targets = {package.get("main"), package.get("types")} | set(_leaves(package.get("exports", {})))
    expected |= {target.removeprefix("./") for target in targets if target}
    problems = []
    if listed != expected:
        problems.append(f"npm pack lists {sorted(listed)}, expected {sorted(expected)}")
    if listing["version"] != version:
        problems.append(f"npm pack says version {listing['version']}")
    with tarfile.open(tarball) as archive:
        packed = {member.name.removeprefix("package/") for member in archive.getmembers() if member.isfile()}
        manifest = archive.extractfile("package/package.json")
        packed_version = json.loads(manifest.read()).get("version") if manifest else None
    if packed != listed:
        problems.append(f"the tarball holds {sorted(packed)}, the dry run listed {sorted(listed)}")
    if packed_version != version:
        problems.append(f"the tarball's package.json says {packed_version!r}")
    if problems:
        raise CheckError(f"{tarball.name}: " + "; ".join(problems))
    return f"{tarball.name}: {', '.join(sorted(packed))}"


def _leaves(exports: object) -> Iterable[str]:
    if isinstance(exports, str):
        yield exports
    elif isinstance(exports, dict):
        for value in exports.values():
            yield from _leaves(value)


# ---- the image's venv ----------------------------------------------------------------------
def _record(text: str) -> dict[str, str]:
    rows = (line.split(",") for line in text.splitlines() if line)
    return {row[0]: row[1] for row in rows if row[0].startswith(f"{PACKAGE}/") and row[1]}


def check_same_code(wheel_path: Path, venv_python: Path) -> str:
    """The image's install steps build their own wheel: it must hold the released wheel's files."""
    with zipfile.ZipFile(wheel_path) as wheel:
        (record_name,) = [name for name in wheel.namelist() if name.endswith(".dist-info/RECORD")]
        released = _record(wheel.read(record_name).decode())
    where = "import importlib.metadata as m; print(m.distribution('appwrite-token-exchange')._path)"
    site = subprocess.run(  # noqa: S603 - the venv's own interpreter
        [str(venv_python), "-I", "-c", where],  # -I: not the checkout's own egg-info in the cwd
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    installed = _record((Path(site) / "RECORD").read_text())
    installed = {name: digest for name, digest in installed.items() if not name.endswith(".pyc")}
    # The image's builder copies service/ only, so its wheel has no demo page assets (setup.py):
    # the image runs `serve`. Everything else must be the released wheel's, byte for byte.
    demo_page = {name for name in released if name.startswith(DEMO_VENDOR)}
    released = {name: digest for name, digest in released.items() if name not in demo_page}
    if installed != released:
        differ = sorted(name for name in set(installed) | set(released) if installed.get(name) != released.get(name))
        raise CheckError(f"the image's venv holds other {PACKAGE}/ files than {wheel_path.name}: {differ[:10]}")
    return (
        f"the image's venv holds {len(released)} {PACKAGE}/ files byte for byte as {wheel_path.name} "
        f"(all but the demo page's {len(demo_page)} browser files)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_readyz(venv_python: Path, version: str) -> str:
    """Starts the image's CMD from the built venv and asks /readyz (Appwrite down: it degrades)."""
    port = _free_port()
    env = {
        "PATH": f"{venv_python.parent}:{os.environ.get('PATH', '')}",
        "APPWRITE_ENDPOINT": "http://127.0.0.1:9/v1",
        "APPWRITE_PROJECT_ID": "release-check",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "DRAIN_TIMEOUT_SECONDS": "1",
    }
    process = subprocess.Popen([str(venv_python.parent / "token-exchange"), "serve"], env=env)  # noqa: S603
    try:
        body = _poll_json(f"http://127.0.0.1:{port}/readyz", process.poll, deadline=time.monotonic() + 30)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reported = body.get("version") or (body.get("service") or {}).get("version")
    if reported is None:
        return f"/readyz answered {body.get('status')!r}; it does not report the service's version"
    if reported != version:
        raise CheckError(f"/readyz reports version {reported!r}, the release is {version}")
    return f"/readyz reports version {reported}"


def _poll_json(url: str, exited: Callable[[], int | None], deadline: float) -> dict[str, Any]:
    while True:
        if exited() is not None:
            raise CheckError("token-exchange serve exited before /readyz answered")
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
                return dict(json.load(response))
        except urllib.error.HTTPError as error:
            return dict(json.load(error))
        except OSError:
            if time.monotonic() > deadline:
                raise CheckError(f"{url} never answered") from None
            time.sleep(0.2)


# ---- the SBOM ------------------------------------------------------------------------------
def _environment(python: Path) -> dict[str, str]:
    """The marker environment of that interpreter (PEP 508), which has no packaging of its own."""
    code = (
        "import json, os, platform, sys\n"
        "v = sys.implementation.version\n"
        "iv = f'{v.major}.{v.minor}.{v.micro}'\n"
        "iv += f'{v.releaselevel[0]}{v.serial}' if v.releaselevel != 'final' else ''\n"
        "print(json.dumps({'implementation_name': sys.implementation.name, 'implementation_version': iv,\n"
        "  'os_name': os.name, 'platform_machine': platform.machine(), 'platform_release': platform.release(),\n"
        "  'platform_system': platform.system(), 'platform_version': platform.version(),\n"
        "  'python_full_version': platform.python_version(), 'platform_python_implementation':\n"
        "  platform.python_implementation(), 'python_version': '.'.join(platform.python_version_tuple()[:2]),\n"
        "  'sys_platform': sys.platform}))\n"
    )
    result = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    return dict(json.loads(result.stdout))


def check_sbom(path: Path, lock: Path, version: str, python: Path, spec: str) -> str:
    """The SBOM lists exactly the lock's packages for that interpreter, and the project itself."""
    bom = json.loads(path.read_text())
    problems = []
    if bom.get("bomFormat") != "CycloneDX" or bom.get("specVersion") != spec:
        problems.append(f"not CycloneDX {spec}: {bom.get('bomFormat')} {bom.get('specVersion')}")
    listed: dict[str, str | None] = {canonicalize_name(c["name"]): c.get("version") for c in bom.get("components", [])}
    environment = _environment(python)
    expected: dict[str, str | None] = {
        name: pinned
        for name, (pinned, marker) in read_lock(lock).items()
        if marker is None or marker.evaluate(environment)
    }
    expected["appwrite-token-exchange"] = version
    for name in sorted(set(listed) | set(expected)):
        if listed.get(name) != expected.get(name):
            problems.append(f"{name}: SBOM {listed.get(name)}, expected {expected.get(name)}")
    components = bom.get("components", [])
    unpurled = [c["name"] for c in components if not c.get("purl") and c["name"] != "appwrite-token-exchange"]
    if unpurled:
        problems.append(f"no purl: {unpurled}")
    if problems:
        raise CheckError(f"{path.name}: " + "; ".join(problems))
    return (
        f"{path.name}: CycloneDX {spec}, {len(listed)} components = {lock.relative_to(ROOT)} for this platform "
        f"+ the project (aiohttp {listed['aiohttp']}, appwrite-token-exchange {listed['appwrite-token-exchange']})"
    )


# ---- the workflows' run: scripts, for shellcheck -------------------------------------------
def extract_run_scripts(folder: Path, out: Path) -> str:
    """Each `run:` of each workflow as a bash file (GitHub's `bash -e {0}`), each ${{ }} an env variable."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for workflow in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        jobs = yaml.safe_load(workflow.read_text()).get("jobs", {})
        for job_name, job in jobs.items():
            for index, step in enumerate(job.get("steps", []), 1):
                if "run" not in step:
                    continue
                script = re.sub(r"\$\{\{.*?\}\}", "${GITHUB_EXPRESSION}", step["run"])
                name = f"{workflow.stem}.{job_name}.{index}.sh"
                where = f"{workflow.name}: jobs.{job_name}.steps[{index}] {step.get('name', '')}"
                header = f"#!/usr/bin/env bash\n# {where}\n"
                (out / name).write_text(header + "set -e\n" + script)
                count += 1
    return f"{count} run: scripts from {folder.relative_to(ROOT)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    version = commands.add_parser("version", help="print the version; fail where another file disagrees")
    version.add_argument("--tag", help="the release tag, which must be v<version>")
    commands.add_parser("npm-repository").add_argument("url")
    commands.add_parser("backend").add_argument("lock", type=Path)
    for name in ("wheel", "sdist"):
        sub = commands.add_parser(name)
        sub.add_argument("path", type=Path)
        sub.add_argument("--version", required=True)
    npm = commands.add_parser("npm")
    npm.add_argument("listing", type=Path, help="npm pack --dry-run --json")
    npm.add_argument("tarball", type=Path)
    npm.add_argument("--version", required=True)
    same = commands.add_parser("same-code")
    same.add_argument("wheel", type=Path)
    same.add_argument("venv_python", type=Path)
    ready = commands.add_parser("readyz")
    ready.add_argument("venv_python", type=Path)
    ready.add_argument("--version", required=True)
    sbom = commands.add_parser("sbom")
    sbom.add_argument("path", type=Path)
    sbom.add_argument("--lock", type=Path, required=True)
    sbom.add_argument("--python", type=Path, required=True, help="the interpreter the SBOM describes")
    sbom.add_argument("--version", required=True)
    sbom.add_argument("--spec", required=True)
    scripts = commands.add_parser("run-scripts")
    scripts.add_argument("folder", type=Path)
    scripts.add_argument("out", type=Path)
    args = parser.parse_args()

    checks: dict[str, Callable[[], str]] = {
        "version": lambda: check_version(args.tag),
        "npm-repository": lambda: check_npm_repository(args.url),
        "backend": lambda: check_backend(args.lock.resolve()),
        "wheel": lambda: check_wheel(args.path, args.version),
        "sdist": lambda: check_sdist(args.path, args.version),
        "npm": lambda: check_npm(args.listing, args.tarball, args.version),
        "same-code": lambda: check_same_code(args.wheel, args.venv_python),
        "readyz": lambda: check_readyz(args.venv_python, args.version),
        "sbom": lambda: check_sbom(args.path, args.lock.resolve(), args.version, args.python, args.spec),
        "run-scripts": lambda: extract_run_scripts(args.folder.resolve(), args.out),
    }
    try:
        print(checks[args.command]())
    except CheckError as error:
        print(f"checks.py {args.command}: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
