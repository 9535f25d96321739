"""`python -m infra.validation [--sync-workflows] [--kubectl PATH] [--crds DIR]` from the repository root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .repo import BASE, CRD_DIR, OVERLAYS, ROOT
from .suite import validate_repository
from .workflows import sync_workflow_copies, workflow_copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.validation", description=__doc__)
    parser.add_argument("--sync-workflows", action="store_true", help="copy workflows/*.yaml over the overlays' copies")
    parser.add_argument("--kubectl", help="kubectl binary (default: the one on PATH)")
    parser.add_argument("--crds", type=Path, default=CRD_DIR, help="folder with KubeRay's ray.io_*.yaml CRDs")
    args = parser.parse_args(argv)
    if args.sync_workflows:
        overlays = [p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file()]
        for path in sync_workflow_copies(workflow_copies([BASE, *overlays]), ROOT):
            print(f"copied workflows/{path.name} -> {path.relative_to(ROOT)}")
    report = validate_repository(ROOT, crd_dir=args.crds, kubectl=args.kubectl)
    for problem in report.problems:
        print(problem)
    print(f"checked: {', '.join(report.checked)}")
    for skipped in report.skipped:
        print(f"skipped: {skipped}")
    print(f"{len(report.problems)} problem(s)")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
