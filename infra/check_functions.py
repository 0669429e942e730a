#!/usr/bin/env python3
"""Checks that template.yaml and the function crates agree.

- Every crate under functions/ (except `local`, the all-in-one server) is a workspace member and
  has an AWS::Serverless::Function whose Metadata.BuildProperties.Binary is one of its binaries.
- Every function resource is built with cargo-lambda from the workspace root (BuildMethod
  rust-cargolambda, CodeUri ".") and names a binary some crate produces, and no two functions
  share a binary. A binary listed in PENDING is tolerated while its crate folder does not exist
  yet; once the folder exists it must produce that binary.
- Every SQS event source's queue has a visibility timeout of at least 6 x the function timeout
  plus the batching window (AWS's recommendation: a message is not handed out again while a
  batch holding it, retries included, may still be running).

Usage: check_functions.py [REPO_ROOT]. Exits 1 and lists every problem found.
Needs PyYAML (the lint venv has it through cfn-lint) and Python 3.11+ (tomllib).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import yaml

# Binary -> crate folder, for functions the template declares ahead of their crate.
PENDING = {"herald-feed-socket": "functions/feed-socket"}
# Crates under functions/ that are not Lambda functions.
NOT_FUNCTIONS = {"local"}
SQS_DEFAULT_VISIBILITY = 30
LAMBDA_DEFAULT_TIMEOUT = 3


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short forms (`!Ref X`) as their long forms."""


def _construct_intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {name: value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def crate_binaries(crate_dir: Path) -> tuple[str, list[str]]:
    """The package name and the binary targets cargo builds for the crate in `crate_dir`."""
    manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text())
    package = manifest.get("package", {})
    name = package["name"]
    bins = []
    explicit_paths = set()
    for target in manifest.get("bin", []):
        bin_name = target.get("name", name)
        bins.append(bin_name)
        explicit_paths.add(target.get("path", "src/main.rs" if bin_name == name else f"src/bin/{bin_name}.rs"))
    if package.get("autobins", True):
        if (crate_dir / "src/main.rs").is_file() and "src/main.rs" not in explicit_paths and name not in bins:
            bins.append(name)
        bin_dir = crate_dir / "src/bin"
        if bin_dir.is_dir():
            for path in sorted(bin_dir.iterdir()):
                rel = path.relative_to(crate_dir).as_posix()
                if rel in explicit_paths:
                    continue
                if path.suffix == ".rs":
                    bins.append(path.stem)
                elif (path / "main.rs").is_file():
                    bins.append(path.name)
    return name, bins


def number(value: object, what: str, errors: list[str]) -> int | None:
    """A literal number from the template, or None (with an error) for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        errors.append(f"{what} must be a literal number to be checked, got {value!r}")
        return None
    try:
        return int(value)
    except ValueError:
        errors.append(f"{what} must be a literal number, got {value!r}")
        return None


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    errors: list[str] = []
    notes: list[str] = []

    template = yaml.load((root / "template.yaml").read_text(), Loader=CfnLoader)
    resources = template.get("Resources", {})
    global_fn = template.get("Globals", {}).get("Function", {})
    members = set(tomllib.loads((root / "Cargo.toml").read_text()).get("workspace", {}).get("members", []))

    # crate folder (relative) -> binaries
    crates: dict[str, list[str]] = {}
    for manifest in sorted((root / "functions").glob("*/Cargo.toml")):
        crate_dir = manifest.parent
        if crate_dir.name in NOT_FUNCTIONS:
            continue
        rel = crate_dir.relative_to(root).as_posix()
        package, bins = crate_binaries(crate_dir)
        if rel not in members:
            errors.append(f"{rel} (package {package}) is not a member of the workspace in Cargo.toml")
        if not bins:
            errors.append(f"{rel} (package {package}) has no binary target (src/main.rs or [[bin]])")
        crates[rel] = bins
    binary_crate = {b: rel for rel, bins in crates.items() for b in bins}

    functions: dict[str, dict] = {
        lid: res for lid, res in resources.items() if res.get("Type") == "AWS::Serverless::Function"
    }
    used: dict[str, str] = {}
    for lid, res in functions.items():
        props = res.get("Properties", {})
        meta = res.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            errors.append(f"{lid}: Metadata.BuildMethod must be rust-cargolambda, got {meta.get('BuildMethod')!r}")
        if props.get("CodeUri") != ".":
            errors.append(f"{lid}: CodeUri must be '.' (the workspace root), got {props.get('CodeUri')!r}")
        binary = meta.get("BuildProperties", {}).get("Binary")
        if not isinstance(binary, str) or not binary:
            errors.append(f"{lid}: Metadata.BuildProperties.Binary is missing")
            continue
        if binary in used:
            errors.append(f"{lid} and {used[binary]} both build binary {binary}")
        used[binary] = lid
        if binary in binary_crate:
            continue
        pending_dir = PENDING.get(binary)
        if pending_dir is not None and not (root / pending_dir).exists():
            notes.append(f"{lid}: binary {binary} is pending ({pending_dir} does not exist yet); sam build will fail on it until then")
            continue
        errors.append(f"{lid}: binary {binary} is not built by any crate under functions/ "
                      f"(known binaries: {', '.join(sorted(binary_crate)) or 'none'})")

    for rel, bins in crates.items():
        if bins and not any(b in used for b in bins):
            errors.append(f"{rel} (binaries {', '.join(bins)}) has no AWS::Serverless::Function in template.yaml "
                          f"with Metadata.BuildProperties.Binary set to one of them")

    # Visibility timeouts of the queues feeding functions.
    for lid, res in functions.items():
        props = res.get("Properties", {})
        timeout = number(props.get("Timeout", global_fn.get("Timeout", LAMBDA_DEFAULT_TIMEOUT)), f"{lid}.Timeout", errors)
        for ev_name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            ev_props = event.get("Properties", {})
            queue_ref = ev_props.get("Queue")
            getatt = queue_ref.get("Fn::GetAtt") if isinstance(queue_ref, dict) else None
            if not (isinstance(getatt, list) and len(getatt) == 2 and getatt[1] == "Arn" and getatt[0] in resources):
                errors.append(f"{lid}.Events.{ev_name}: Queue must be !GetAtt <queue in this template>.Arn to be checked")
                continue
            queue_id = getatt[0]
            visibility = number(resources[queue_id].get("Properties", {}).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY),
                                f"{queue_id}.VisibilityTimeout", errors)
            window = number(ev_props.get("MaximumBatchingWindowInSeconds", 0),
                            f"{lid}.Events.{ev_name}.MaximumBatchingWindowInSeconds", errors)
            if None in (timeout, visibility, window):
                continue
            needed = 6 * timeout + window
            if visibility < needed:
                errors.append(f"{queue_id}.VisibilityTimeout is {visibility}s; {lid} (timeout {timeout}s, batching window "
                              f"{window}s) needs at least 6 x {timeout} + {window} = {needed}s")
            if ev_props.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                errors.append(f"{lid}.Events.{ev_name}: FunctionResponseTypes must be [ReportBatchItemFailures]")

    for note in notes:
        print(f"note: {note}")
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        print(f"check_functions: {len(errors)} problem(s) in template.yaml vs functions/", file=sys.stderr)
        return 1
    print(f"check_functions: {len(functions)} function resources match {len(crates)} function crates "
          f"({', '.join(sorted(used))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
