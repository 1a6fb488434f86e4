"""Run every benchmark module in bench/ (or those named on the command line) and print their tables."""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    here = Path(__file__).parent
    names = argv or sorted(info.name for info in pkgutil.iter_modules([str(here)]) if info.name.startswith("bench_"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    failed = []
    for name in names:
        print(f"\n## {name}\n", flush=True)
        # One broken benchmark must not cost the figures of the others: report it and go on.
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
