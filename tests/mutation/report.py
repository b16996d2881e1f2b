"""The mutation run's figures per module, read from mutmut's results (scripts/mutation runs this).

For each mutated module: killed / total, then every mutant no test noticed, with the line it
changed. A survivor listed in equivalent.txt (a mutant that cannot change behaviour, with the
reason) is reported apart and does not fail the run; any other survivor does (exit 1).
"""

from __future__ import annotations

import ast
import difflib
import json
import sys
from collections import defaultdict
from pathlib import Path

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code): a test failed, or the mutant
# hung, crashed or failed the type check; all of these mean the tests noticed.
KILLED = {1, 3, 36, 37, 24, -24, 152, 255, -11, -9}
SURVIVED = {0}
NOT_REACHED = {5, 33}  # no selected test runs the mutated function: a survivor too


def equivalents(path: Path) -> dict[str, str]:
    """`name  reason` per line; blank lines and `#` comments are skipped."""
    listed: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        listed[name] = reason.strip()
    return listed


def changed_line(mutated_source: str, name: str) -> str:
    """The line the mutant changed, as `- original  + mutated` (mutmut keeps both in the file)."""
    function = name.rpartition(".")[2]
    original = function.partition("__mutmut_")[0] + "__mutmut_orig"
    bodies = {
        node.name: ast.get_source_segment(mutated_source, node) or ""
        for node in ast.walk(ast.parse(mutated_source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in {function, original}
    }
    before = bodies.get(original, "").splitlines()[1:]
    after = bodies.get(function, "").splitlines()[1:]
    minus = [line.strip() for line in difflib.ndiff(before, after) if line.startswith("- ")]
    plus = [line.strip() for line in difflib.ndiff(before, after) if line.startswith("+ ")]
    return f"{' / '.join(minus) or '?'}  ->  {' / '.join(plus) or '(removed)'}"


def main(work: Path, equivalent_file: Path) -> int:
    listed = equivalents(equivalent_file)
    seen: set[str] = set()
    failing = 0
    totals: dict[str, int] = defaultdict(int)
    for meta in sorted((work / "mutants" / "src").rglob("*.py.meta")):
        results: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not results:
            continue
        source = meta.with_suffix("").read_text()
        module = str(meta.relative_to(work / "mutants" / "src").with_suffix("").with_suffix("")).replace("/", ".")
        killed = [name for name, code in results.items() if code in KILLED]
        unchecked = [name for name, code in results.items() if code is None]
        survivors = [name for name, code in results.items() if code not in KILLED and code is not None]
        equivalent = [name for name in survivors if name in listed]
        real = [name for name in survivors if name not in listed]
        seen.update(results)
        counted = len(results) - len(equivalent) - len(unchecked)
        rate = f"{100 * len(killed) / counted:.0f}%" if counted else "-"
        print(
            f"{module}: {len(killed)} / {len(results)} killed ({rate} of the non-equivalent), "
            f"{len(equivalent)} equivalent, {len(real)} surviving" + (f", {len(unchecked)} not run" if unchecked else "")
        )
        for name in real:
            why = "no selected test reaches it" if results[name] in NOT_REACHED else f"exit {results[name]}"
            print(f"  SURVIVED {name} ({why}): {changed_line(source, name)}")
        for name in equivalent:
            print(f"  equivalent {name}: {listed[name]}")
        failing += len(real)
        for key, value in (("killed", len(killed)), ("total", len(results)), ("equivalent", len(equivalent))):
            totals[key] += value
        totals["surviving"] += len(real)
    print(
        f"all modules: {totals['killed']} / {totals['total']} killed, {totals['equivalent']} equivalent, "
        f"{totals['surviving']} surviving"
    )
    # A listed name of a module this run mutated, that the run no longer made.
    modules = {name.partition(".x")[0] for name in seen}
    stale = sorted(name for name in set(listed) - seen if name.partition(".x")[0] in modules)
    if stale:
        # A listed name that no longer exists: the source moved and mutmut renumbered its mutants.
        print(f"equivalent.txt names {len(stale)} mutant(s) this run did not make; review them: {', '.join(stale)}")
    if not seen:
        print("no mutation results found: did mutmut run?")
        return 1
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
