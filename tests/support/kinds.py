"""The markers for tests that start more than the test process, registered in pyproject.toml
with `slow` (set by hand on tests that take half a second or more). The fast loop leaves all four
out: `-m "not slow and not redis and not subprocess and not tools"` (scripts/test fast).

redis       a real redis-server or valkey-server (standalone, Cluster or Sentinel set)
subprocess  our own code in a child process: the service, the CLI, the emulator, `python -c`,
            the release scripts
tools       an external program: promtool, openapi-python-client, npm, wrk, openssl and the like

`mark_tests` (from the top conftest's pytest_collection_modifyitems) marks a test by the support
code it uses: a test that calls, itself or through a fixture or a helper of the tests, one of the
Redis rigs is marked `redis`, and one that calls `running` (tests/support/processes.py) is marked
`subprocess`. A parametrized fixture whose params carry marks of their own (in-memory state beside
a real Redis) is left to them. A test that starts a program some other way is marked in its file:
a module `pytestmark`, or a mark on the test. `ChildProcessCheck` makes the markers hold: a test
that starts a child process of a kind it is not marked with fails, naming the program and the
marker it needs.
"""
from __future__ import annotations

import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.processes import running
from tests.support.redis_cluster import redis_cluster
from tests.support.redis_sentinel import redis_sentinel
from tests.support.redis_server import redis_server

# The marker a test gets for calling each of these.
MARKED_BY: tuple[tuple[Callable[..., Any], str], ...] = (
    (redis_server, "redis"), (redis_cluster, "redis"), (redis_sentinel, "redis"), (running, "subprocess"),
)
# Which markers allow a test to start a program, by its name: the Redis rigs' programs (openssl
# makes the certificate of a rig with TLS), and the interpreters, which run our code or a tool.
_PROGRAMS = {
    "redis-server": {"redis"}, "valkey-server": {"redis"}, "redis-cli": {"redis"}, "openssl": {"redis", "tools"},
    "bash": {"subprocess", "tools"}, "sh": {"subprocess", "tools"}, "node": {"subprocess", "tools"},
}


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """A function's code and that of everything defined inside it (closures, comprehensions)."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def kinds_called(function: Callable[..., Any], seen: set[Any] | None = None) -> set[str]:
    """The markers of what `function` calls from MARKED_BY, directly or through functions of the
    tests (tests.*), found by the objects its global names stand for, so an alias counts too."""
    seen = set() if seen is None else seen
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or function in seen:
        return set()
    seen.add(function)
    kinds: set[str] = set()
    scope = function.__globals__
    for name in {name for part in _code_objects(code) for name in part.co_names}:
        target = scope.get(name)
        marked = [kind for rig, kind in MARKED_BY if target is rig]
        if marked:
            kinds.update(marked)
        elif inspect.isfunction(inspect.unwrap(target)) and target.__module__.startswith("tests."):
            kinds |= kinds_called(target, seen)
    return kinds


def _marks_its_params(params: Any) -> bool:
    return any(getattr(param, "marks", ()) for param in params or ())  # pytest.param(..., marks=...)


def mark_tests(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        kinds = kinds_called(item.function)
        # Every fixture the test uses, those fixtures use included (pytest has no public API for it).
        for definitions in item._fixtureinfo.name2fixturedefs.values():
            fixture = definitions[-1]
            if fixture.func.__module__.startswith("tests.") and not _marks_its_params(fixture.params):
                kinds |= kinds_called(fixture.func)
        for kind in sorted(kinds):
            if not item.get_closest_marker(kind):
                item.add_marker(kind)


def kinds_of(program: str) -> set[str]:
    """The markers any one of which allows a test to start `program`."""
    name = os.path.basename(program)
    if name.startswith("python") or program == sys.executable:
        return {"subprocess", "tools"}
    return _PROGRAMS.get(name, {"tools"})


def _program(event: str, args: tuple[Any, ...]) -> str:
    """The program an audit event of a new process starts."""
    if event == "os.system":
        return os.fsdecode(args[0]).split()[0]
    program = args[1] if event == "os.spawn" else args[0]
    if program is None:  # Popen without executable=: the first word of its args
        argv = args[1]
        program = os.fsdecode(argv).split()[0] if isinstance(argv, (str, bytes)) else argv[0]
    return os.fsdecode(program)


class ChildProcessCheck:
    """An audit hook (Python has no way to remove one, so it is installed once per run) that
    fails the running test when it starts a program its markers do not allow."""

    _EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn", "os.system"})

    def __init__(self) -> None:
        self.current: pytest.Item | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        item = self.current
        if item is None or event not in self._EVENTS:
            return
        program = _program(event, args)
        allowed = kinds_of(program)
        if not any(item.get_closest_marker(kind) for kind in allowed):
            needed = " or ".join(f"@pytest.mark.{kind}" for kind in sorted(allowed))
            pytest.fail(f"{item.nodeid} starts {program}: mark it {needed} (tests/support/kinds.py)", pytrace=False)
