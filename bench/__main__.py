"""Run the benchmarks in bench/bench_*.py and print measured figures beside their targets.

Each module defines ``run(args) -> list[dict]``; a result dict has ``name``,
``value``, ``unit``, and optionally ``target`` (a ceiling or floor text) and
``ok`` (whether the target is met). Results are also written to
``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openline.settings")
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        names = [n for n in names if n in wanted]
    results = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.monotonic()
        print(f"== {name}", flush=True)
        for result in module.run(args):
            result["bench"] = name
            results.append(result)
            status = "" if "ok" not in result else (" OK" if result["ok"] else " MISSED")
            target = f"  (target {result['target']})" if result.get("target") else ""
            print(
                f"   {result['name']}: {result['value']} {result['unit']}{target}{status}",
                flush=True,
            )
        print(f"   [{time.monotonic() - started:.1f}s]", flush=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    return 0 if all(r.get("ok", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
