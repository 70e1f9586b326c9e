"""`boxoffice-codegen`: regenerate the contract artefacts, or check that they are fresh."""

from __future__ import annotations

import argparse
import sys

from boxoffice_codegen.openapi_export import export_openapi, openapi_is_stale
from boxoffice_codegen.paths import CONTRACTS_DIR, OPENAPI_PATH, ROOT
from boxoffice_codegen.protogen import regenerate, stale_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="boxoffice-codegen", description=__doc__)
    parser.add_argument("artefact", choices=["proto", "openapi"])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the artefact is stale; write nothing"
    )
    args = parser.parse_args(argv)
    if args.artefact == "proto":
        if args.check:
            stale = stale_files()
            for name in stale:
                print(f"stale: {CONTRACTS_DIR.relative_to(ROOT)}/boxoffice/{name}")
            if stale:
                print("run `make proto` and commit the result", file=sys.stderr)
            return 1 if stale else 0
        regenerate()
        print(f"generated {CONTRACTS_DIR.relative_to(ROOT)}/boxoffice")
        return 0
    if args.check:
        if openapi_is_stale():
            print(f"stale: {OPENAPI_PATH.relative_to(ROOT)}; run `make openapi`", file=sys.stderr)
            return 1
        return 0
    export_openapi()
    print(f"wrote {OPENAPI_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
