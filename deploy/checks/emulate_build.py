"""Run deploy/Dockerfile's build on the host, without Docker, as faithfully as is safe.

1. The build context is made the way Docker makes it: the repository minus what
   .dockerignore excludes (docker-py's implementation of those rules).
2. The builder stage runs as written: ENV, ARG, WORKDIR and COPY are applied to a
   scratch root folder and every RUN line runs verbatim with `sh -c` (container paths
   such as /opt/venv are mapped into that folder, and `python` is the host's Python
   of the same X.Y as the image tag).
3. The runtime stage is checked, not run (its RUN lines would change the host):
   COPY --from must keep the venv's path, USER must be numeric and not root, the
   HEALTHCHECK and CMD are recorded.
4. --smoke starts the CMD from the built venv on loopback, runs the HEALTHCHECK's
   own command until it passes, asks /readyz and /metrics, sends SIGTERM and expects
   a clean exit within the drain time; it fails if the process wrote into the
   image's files (read-only root).

A summary (uid, exposed ports, ...) is written as JSON for the manifest checks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser

# Paths the base image provides: kept as they are. Any other absolute path that the
# Dockerfile names (/src, /opt/venv, ...) is created by the build and lives in the scratch root.
_BASE_IMAGE_PREFIXES = ("/usr", "/bin", "/sbin", "/lib", "/etc", "/tmp", "/dev", "/proc", "/sys", "/var", "/run")  # noqa: S108 - container paths


class BuildError(Exception):
    pass


@dataclass
class Stage:
    name: str | None
    image: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str | None = None
    expose: list[int] = field(default_factory=list)
    cmd: list[str] | None = None
    healthcheck: list[str] | None = None
    copies_from: list[tuple[str, str, str]] = field(default_factory=list)


def dockerignore_patterns(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def make_context(repo: Path, dockerfile: str, target: Path) -> None:
    included = exclude_paths(str(repo), dockerignore_patterns(repo), dockerfile=dockerfile)
    for rel in sorted(included):
        source = repo / rel
        if source.is_dir() and not source.is_symlink():
            (target / rel).mkdir(parents=True, exist_ok=True)
        else:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel, follow_symlinks=False)


def split_flags(value: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(value)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, val = words.pop(0)[2:].partition("=")
        flags[key] = val
    return flags, words


def parse_exec_form(text: str) -> list[str] | None:
    text = text.strip()
    if not text.startswith("["):
        return None
    parsed = json.loads(text)
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise BuildError(f"not an exec-form list: {text}")
    return parsed


class Emulator:
    def __init__(self, context: Path, rootfs: Path, python: Path) -> None:
        self.context = context
        self.rootfs = rootfs
        self.shims = rootfs.parent / "shims"
        self.shims.mkdir(exist_ok=True)
        for name in ("python", "python3"):
            link = self.shims / name
            if not link.exists():
                link.symlink_to(python)
        self.python = python

    # -- paths -----------------------------------------------------------------------
    def host_path(self, container_path: str) -> Path:
        if not container_path.startswith("/"):
            raise BuildError(f"expected an absolute path, got {container_path!r}")
        if container_path.startswith(_BASE_IMAGE_PREFIXES):
            return Path(container_path)
        return self.rootfs / container_path.lstrip("/")

    def map_value(self, value: str) -> str:
        """Map the container paths in an environment value (PATH-like lists too)."""
        parts = value.split(":") if ":" in value and "://" not in value else [value]
        mapped = []
        for part in parts:
            if part.startswith("/") and not part.startswith(_BASE_IMAGE_PREFIXES):
                mapped.append(str(self.host_path(part)))
            else:
                mapped.append(part)
        return ":".join(mapped)

    def process_env(self, stage: Stage) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in stage.env.items():
            env[key] = self.map_value(value)
        # Dockerfile PATH additions first, then `python` as the image has it, then the host's.
        env["PATH"] = ":".join([*self.image_path(env), str(self.shims), os.environ.get("PATH", "")])
        return env

    def image_path(self, env: dict[str, str]) -> list[str]:
        """The PATH entries that the Dockerfile added (they live in the scratch root)."""
        return [p for p in env.get("PATH", "").split(":") if p.startswith(str(self.rootfs))]

    def which(self, stage: Stage, command: str) -> Path | None:
        found = shutil.which(command, path=":".join(self.image_path(self.process_env(stage))))
        return Path(found) if found else None

    # -- instructions ------------------------------------------------------------------
    def expand(self, stage: Stage, text: str) -> str:
        values = {**os.environ, **stage.env}
        return string.Template(text).safe_substitute(values)

    def set_env(self, stage: Stage, value: str, is_arg: bool = False) -> None:
        words = shlex.split(value)
        if not is_arg and len(words) >= 2 and "=" not in words[0]:
            words = [f"{words[0]}={' '.join(words[1:])}"]  # legacy "ENV KEY value"
        for word in words:
            key, sep, val = word.partition("=")
            if not sep:
                if is_arg:
                    continue  # ARG without a default
                raise BuildError(f"ENV without a value: {word}")
            stage.env[key] = self.expand(stage, val)

    def copy(self, stage: Stage, value: str) -> None:
        flags, words = split_flags(value)
        if "from" in flags:
            if len(words) != 2:
                raise BuildError(f"COPY --from with one source only, got: {value}")
            stage.copies_from.append((flags["from"], words[0], words[1]))
            return
        if len(words) < 2:
            raise BuildError(f"COPY needs a source and a destination: {value}")
        *sources, dest = (self.expand(stage, word) for word in words)
        dest_abs = dest if dest.startswith("/") else os.path.join(stage.workdir, dest)
        target = self.host_path(os.path.normpath(dest_abs))
        as_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
        for source in sources:
            pattern = source.strip("/")
            if pattern in ("", "."):
                matches = [self.context]
            else:
                matches = sorted(self.context.glob(pattern))
            if not matches:
                raise BuildError(f"COPY {source}: not in the build context (missing, or excluded by .dockerignore)")
            for match in matches:
                if match.is_dir():
                    shutil.copytree(match, target, dirs_exist_ok=True, symlinks=True)
                elif as_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, target / match.name)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, target)

    def run(self, stage: Stage, value: str) -> None:
        flags, _ = split_flags(value) if value.startswith("--") else ({}, [])
        if flags:
            raise BuildError(f"RUN flags are not emulated: {value}")
        argv = parse_exec_form(value) or ["/bin/sh", "-c", value]
        cwd = self.host_path(stage.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        print(f"    RUN {value}", flush=True)
        result = subprocess.run(argv, cwd=cwd, env=self.process_env(stage), check=False)  # noqa: S603
        if result.returncode != 0:
            raise BuildError(f"RUN failed with exit code {result.returncode}: {value}")


def python_tag_matches(image: str, python: Path) -> None:
    match = re.match(r"^(?:[\w./-]+/)?python:(\d+)\.(\d+)", image)
    if not match:
        raise BuildError(f"base image {image!r} is not python:X.Y-*; cannot pick a host Python")
    wanted = f"{match.group(1)}.{match.group(2)}"
    found = subprocess.run(  # noqa: S603
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if found != wanted:
        raise BuildError(f"the image has Python {wanted}, the host interpreter {python} is {found}")


def build(repo: Path, dockerfile: str, work: Path, python: Path) -> tuple[Emulator, Stage, Stage]:
    context = work / "context"
    rootfs = work / "rootfs"
    context.mkdir(parents=True)
    rootfs.mkdir()
    make_context(repo, dockerfile, context)
    if not (context / dockerfile).exists():
        raise BuildError(f"{dockerfile} itself is excluded from the build context")
    parser = DockerfileParser(path=str(repo / dockerfile), env_replace=False)
    emulator = Emulator(context, rootfs, python)
    stages: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            _flags, words = split_flags(value)
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(name=name, image=words[0]))
            print(f"  FROM {value}", flush=True)
            continue
        if not stages:
            if instruction == "ARG":
                continue
            raise BuildError(f"{instruction} before FROM")
        stage = stages[-1]
        is_builder = len(stages) == 1
        if instruction == "ENV":
            emulator.set_env(stage, value)
        elif instruction == "ARG":
            emulator.set_env(stage, value, is_arg=True)
        elif instruction == "WORKDIR":
            path = emulator.expand(stage, value)
            stage.workdir = path if path.startswith("/") else os.path.join(stage.workdir, path)
        elif instruction in ("COPY", "ADD"):
            if instruction == "ADD":
                raise BuildError("use COPY, not ADD (hadolint DL3020)")
            if is_builder or "--from" in value:
                emulator.copy(stage, value)  # COPY --from is only recorded, checked below
            else:
                stage.copies_from.append(("context", value, ""))
        elif instruction == "RUN":
            # The runtime stage's RUN lines (useradd, ...) would change this host: not run.
            if is_builder:
                emulator.run(stage, value)
        elif instruction == "USER":
            stage.user = emulator.expand(stage, value)
        elif instruction == "EXPOSE":
            stage.expose = [int(port.split("/")[0]) for port in value.split()]
        elif instruction == "CMD":
            stage.cmd = parse_exec_form(value)
            if stage.cmd is None:
                raise BuildError("CMD must use the exec form so SIGTERM reaches the service")
        elif instruction == "HEALTHCHECK":
            _, _, command = value.partition("CMD")
            stage.healthcheck = parse_exec_form(command)
            if stage.healthcheck is None:
                raise BuildError("HEALTHCHECK CMD must use the exec form")
    if len(stages) != 2 or stages[0].name is None:
        raise BuildError("expected two stages: a named builder and the runtime image")
    builder, runtime = stages
    if builder.image != runtime.image:
        raise BuildError(f"builder ({builder.image}) and runtime ({runtime.image}) images differ")
    python_tag_matches(runtime.image, python)
    check_runtime(emulator, builder, runtime)
    return emulator, builder, runtime


def check_runtime(emulator: Emulator, builder: Stage, runtime: Stage) -> None:
    for source_stage, source, dest in runtime.copies_from:
        if source_stage == "context":
            emulator.copy(runtime, source)
            continue
        if source_stage != builder.name:
            raise BuildError(f"COPY --from={source_stage}: no such stage")
        if not emulator.host_path(source).exists():
            raise BuildError(f"COPY --from={source_stage} {source}: the builder did not make it")
        if os.path.normpath(source) != os.path.normpath(dest):
            raise BuildError(f"COPY --from={source_stage} {source} {dest}: a venv must keep its path")
    if runtime.user is None or not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", runtime.user):
        raise BuildError(f"USER must be a numeric non-root uid[:gid], got {runtime.user!r}")
    if runtime.cmd is None or runtime.healthcheck is None or not runtime.expose:
        raise BuildError("the runtime stage needs CMD, HEALTHCHECK and EXPOSE")
    if emulator.which(runtime, runtime.cmd[0]) is None:
        raise BuildError(f"CMD {runtime.cmd[0]!r} is not on the PATH the Dockerfile sets up")
    print(f"  runtime: USER {runtime.user}, EXPOSE {runtime.expose}, CMD {runtime.cmd}", flush=True)


# -- smoke test ----------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    state = {}
    for path in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            info = path.lstat()
            state[str(path.relative_to(root))] = (info.st_mtime_ns, info.st_size)
    return state


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def smoke(emulator: Emulator, runtime: Stage, work: Path, drain_seconds: float, metrics_out: Path | None) -> None:
    assert runtime.cmd is not None and runtime.healthcheck is not None
    port = free_port()
    tmp = work / "container-tmp"
    tmp.mkdir()
    env = emulator.process_env(runtime)
    env.update(
        {
            "APPWRITE_ENDPOINT": "http://127.0.0.1:9/v1",  # nothing listens: Appwrite is "down"
            "APPWRITE_PROJECT_ID": "deploy-check",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DRAIN_TIMEOUT_SECONDS": str(drain_seconds),
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
            "TMPDIR": str(tmp),
            "HOME": "/nonexistent",
        }
    )
    for secret in ("APPWRITE_JWT_SECRET", "REDIS_URL", "STATE_HASH_KEY"):
        env.pop(secret, None)
    before = snapshot(emulator.rootfs)
    print(f"  smoke: {' '.join(runtime.cmd)} on 127.0.0.1:{port}", flush=True)
    process = subprocess.Popen(runtime.cmd, cwd=tmp, env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise BuildError(f"the service exited early with code {process.returncode}")
            check = subprocess.run(runtime.healthcheck, cwd=tmp, env=env, capture_output=True, check=False)  # noqa: S603
            if check.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise BuildError(f"HEALTHCHECK never passed: {check.stderr.decode()[-500:]}")
            time.sleep(0.3)
        print("    HEALTHCHECK passed", flush=True)
        base = f"http://127.0.0.1:{port}"
        status, body = http_status(f"{base}/readyz")
        if status != 200:
            raise BuildError(f"/readyz answered {status} with Appwrite down (should degrade, not fail): {body}")
        print(f"    /readyz {status}", flush=True)
        status, body = http_status(f"{base}/metrics")
        if status != 200:
            raise BuildError(f"/metrics answered {status}")
        if metrics_out is not None:
            metrics_out.write_text(body)
        print(f"    /metrics {status}", flush=True)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=drain_seconds + 10)
        except subprocess.TimeoutExpired:
            raise BuildError("the service did not exit within the drain time after SIGTERM") from None
        if code != 0:
            raise BuildError(f"the service exited with code {code} after SIGTERM")
        print(f"    SIGTERM: exited 0 after {time.monotonic() - started:.1f}s", flush=True)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    after = snapshot(emulator.rootfs)
    changed = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
    if changed:
        raise BuildError(f"the service wrote into the image (read-only root would fail): {changed[:10]}")
    print("    read-only root: nothing written into the image's files", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="the build context (repository root)")
    parser.add_argument("--dockerfile", default="deploy/Dockerfile", help="relative to --repo")
    parser.add_argument("--work", type=Path, required=True, help="an empty scratch folder")
    parser.add_argument("--python", type=Path, required=True, help="host interpreter of the image's X.Y")
    parser.add_argument("--summary", type=Path, help="write the runtime facts here as JSON")
    parser.add_argument("--smoke", action="store_true", help="start the service and probe it")
    parser.add_argument("--drain-seconds", type=float, default=3.0)
    parser.add_argument("--metrics-out", type=Path, help="save the /metrics exposition here")
    args = parser.parse_args()
    try:
        emulator, _builder, runtime = build(args.repo.resolve(), args.dockerfile, args.work.resolve(), args.python)
        if args.summary:
            uid, _, gid = (runtime.user or "").partition(":")
            args.summary.write_text(
                json.dumps(
                    {
                        "uid": int(uid),
                        "gid": int(gid or uid),
                        "expose": runtime.expose,
                        "cmd": runtime.cmd,
                        # The interpreter beside the CMD's console script: the image's venv.
                        "venv_python": str(emulator.which(runtime, runtime.cmd[0]).parent / "python"),  # type: ignore[union-attr]
                    }
                )
            )
        if args.smoke:
            smoke(emulator, runtime, args.work.resolve(), args.drain_seconds, args.metrics_out)
    except BuildError as error:
        print(f"emulated docker build: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
