"""Where the contract sources and their generated artefacts live in the repository."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
CONTRACTS_DIR = ROOT / "libs" / "contracts"
OPENAPI_PATH = ROOT / "docs" / "openapi.json"
