"""Validate the custom resources of a rendering against vendored JSON schemas, offline.

kubernetes-validate ships the schemas of the Kubernetes core API only: a custom resource
such as the Gateway API's HTTPRoute is "a kind without a schema" to it. This script takes
those documents out of a rendering, validates each against the JSON schema in
deploy/checks/schemas/ that names its apiVersion and kind (properties.apiVersion.const and
properties.kind.const), and writes every other document to --rest, for kubernetes-validate.
A document of an API group that has vendored schemas but no schema for its kind (a
misspelt kind or version) fails here, with a clearer message than "kind without schema".

    validate_crds.py RENDERED.yaml --schemas deploy/checks/schemas --rest CORE.yaml
    validate_crds.py RENDERED.yaml --schemas deploy/checks/schemas --self-test

--self-test proves the schemas are not vacuous: it breaks each custom resource of the
rendering in ways the API server would refuse and fails unless every broken copy is
rejected.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

Key = tuple[str, str]  # (apiVersion, kind)


def load_schemas(directory: Path) -> dict[Key, tuple[Path, jsonschema.protocols.Validator]]:
    schemas: dict[Key, tuple[Path, jsonschema.protocols.Validator]] = {}
    for path in sorted(directory.glob("*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        props = schema.get("properties", {})
        key = (props.get("apiVersion", {}).get("const"), props.get("kind", {}).get("const"))
        if not all(key):
            sys.exit(f"{path}: a schema must fix properties.apiVersion.const and properties.kind.const")
        if key in schemas:
            sys.exit(f"{path}: a second schema for {key[0]} {key[1]}")
        schemas[key] = (path, jsonschema.Draft202012Validator(schema))
    if not schemas:
        sys.exit(f"no schemas (*.json) in {directory}")
    return schemas


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def errors_of(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    found = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{e.json_path}: {e.message}" for e in found]


def label(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')} {doc.get('metadata', {}).get('name')} ({doc.get('apiVersion')})"


# Each breaks a valid document the way a typo or a wrong value would; every one must fail.
def _mutations() -> dict[str, Callable[[dict[str, Any]], None]]:
    def first_rule(d: dict[str, Any]) -> Any:
        return d["spec"]["rules"][0]

    def first_backend(d: dict[str, Any]) -> Any:
        return first_rule(d)["backendRefs"][0]

    def first_path(d: dict[str, Any]) -> Any:
        return first_rule(d)["matches"][0]["path"]

    return {
        "unknown field in spec": lambda d: d["spec"].update(hostname=["x.example.com"]),
        "unknown field in a rule": lambda d: first_rule(d).update(backendRef=first_backend(d)),
        "unknown field in a backendRef": lambda d: first_backend(d).update(serviceName="x"),
        "unknown field in a parentRef": lambda d: d["spec"]["parentRefs"][0].update(listener="https"),
        "Service backendRef without a port": lambda d: first_backend(d).pop("port"),
        "port as a name": lambda d: first_backend(d).update(port="http"),
        "path type misspelt": lambda d: first_path(d).update(type="Prefix"),
        "relative path": lambda d: first_path(d).update(value="v1/realtime"),
        "path with //": lambda d: first_path(d).update(value="/v1//realtime"),
        "upper-case hostname": lambda d: d["spec"].update(hostnames=["App.example.com"]),
        "timeout without a unit": lambda d: first_rule(d).update(timeouts={"request": "3600"}),
        "wrong apiVersion": lambda d: d.update(apiVersion="gateway.networking.k8s.io/v1beta2"),
        "no metadata.name": lambda d: d["metadata"].pop("name"),
    }


def self_test(docs: list[dict[str, Any]], schemas: dict[Key, tuple[Path, Any]]) -> list[str]:
    problems: list[str] = []
    tested = 0
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in schemas:
            continue
        _, validator = schemas[key]
        if errors_of(validator, doc):
            problems.append(f"{label(doc)}: the unbroken document is already invalid")
            continue
        for name, mutate in _mutations().items():
            broken = copy.deepcopy(doc)
            try:
                mutate(broken)
            except (KeyError, IndexError, TypeError) as error:
                problems.append(f"{label(doc)}: cannot apply '{name}' ({error!r}): update the self-test")
                continue
            if not errors_of(validator, broken):
                problems.append(f"{label(doc)}: the schema accepts a document with '{name}'")
            tested += 1
    if not tested:
        problems.append("no document with a vendored schema to test")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendered", type=Path)
    parser.add_argument("--schemas", type=Path, required=True, help="the directory of vendored JSON schemas")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rest", type=Path, help="where to write the documents without a vendored schema")
    mode.add_argument("--self-test", action="store_true", help="check that broken copies are rejected")
    args = parser.parse_args()

    schemas = load_schemas(args.schemas)
    docs = [d for d in yaml.safe_load_all(args.rendered.read_text()) if d]
    if args.self_test:
        problems = self_test(docs, schemas)
        for problem in problems:
            print(f"  self-test: {problem}", file=sys.stderr)
        if not problems:
            print(f"schema self-test: {len(_mutations())} broken copies of each custom resource rejected")
        return 1 if problems else 0

    groups = {group_of(api_version) for api_version, _ in schemas}
    rest: list[dict[str, Any]] = []
    valid: Counter[str] = Counter()
    failed = False
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in schemas:
            path, validator = schemas[key]
            errors = errors_of(validator, doc)
            for error in errors:
                print(f"  {label(doc)} against {path.name}: {error}", file=sys.stderr)
            failed |= bool(errors)
            valid[doc["kind"]] += not errors
        elif group_of(str(doc.get("apiVersion", ""))) in groups:
            print(f"  {label(doc)}: no vendored schema for this apiVersion and kind", file=sys.stderr)
            failed = True
        else:
            rest.append(doc)
    args.rest.write_text(yaml.safe_dump_all(rest, sort_keys=False) if rest else "")
    print(", ".join(f"{n} {kind}" for kind, n in sorted(valid.items()) if n) or "none")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
