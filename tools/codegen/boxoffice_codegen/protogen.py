"""Python message code and mypy stubs generated from proto/ into the contracts library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from boxoffice_codegen.paths import CONTRACTS_DIR, PROTO_DIR

# The generated packages live under libs/contracts/<this>; everything in it is generated.
GENERATED_PACKAGE = "boxoffice"


def proto_files(proto_dir: Path = PROTO_DIR) -> list[str]:
    """Every .proto file of the module, relative to it, in a stable order."""
    return sorted(str(path.relative_to(proto_dir)) for path in proto_dir.rglob("*.proto"))


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> None:
    """Run protoc (from grpcio-tools, pinned by uv.lock) with the python and mypy plugins."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # protoc finds protoc-gen-mypy on PATH; it sits next to this interpreter in the venv.
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"--python_out={out_dir}",
            f"--mypy_out={out_dir}",
            *proto_files(proto_dir),
        ],
        cwd=proto_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed:\n{result.stdout}{result.stderr}")
    package_root = out_dir / GENERATED_PACKAGE
    for directory in [package_root, *(p for p in package_root.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


def regenerate(contracts_dir: Path = CONTRACTS_DIR, proto_dir: Path = PROTO_DIR) -> None:
    """Replace the generated package in the contracts library with freshly generated code."""
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch), proto_dir)
        target = contracts_dir / GENERATED_PACKAGE
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(scratch) / GENERATED_PACKAGE, target)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def stale_files(contracts_dir: Path = CONTRACTS_DIR, proto_dir: Path = PROTO_DIR) -> list[str]:
    """Generated files that differ from what `make proto` would write now (empty when fresh)."""
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch), proto_dir)
        expected = _files(Path(scratch) / GENERATED_PACKAGE)
    actual = _files(contracts_dir / GENERATED_PACKAGE)
    return sorted(
        name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name)
    )
