"""Run the failure drills in drills/drill_*.py, print a table and write drills/results/latest.json.

Each module defines ``run(args) -> list[dict]``; a result dict has ``name``, ``ok`` (bool),
``detail`` (text) and any numbers. A drill that raises counts as failed (never skipped).
Exit code 1 when any drill failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _names(only: list[str]) -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("drill_"))
    if not only:
        return names
    wanted = [n if n.startswith("drill_") else f"drill_{n}" for n in only]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise SystemExit(f"unknown drills: {', '.join(unknown)} (have: {', '.join(names)})")
    return wanted


def _run_one(name: str, args) -> list[dict]:
    from drills.harness import cleanup_all, load_average

    started = time.monotonic()
    load = load_average()
    try:
        module = importlib.import_module(f"drills.{name}")
        results = list(module.run(args))
        if not results:
            results = [{"name": name, "ok": False, "detail": "the drill reported nothing"}]
    except Exception as exc:  # noqa: BLE001 - a crashed drill is a failed drill
        results = [
            {
                "name": name,
                "ok": False,
                "detail": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:],
            }
        ]
    finally:
        cleanup_all()  # whatever the drill left running, even on failure
    seconds = round(time.monotonic() - started, 1)
    for result in results:
        result.setdefault("ok", False)
        result.setdefault("detail", "")
        result["drill"] = name
        result["seconds"] = seconds
        result["load"] = load
    return results


def _print(results: list[dict]) -> None:
    width = max((len(r["name"]) for r in results), default=10)
    print()
    print(f"{'drill':<{width}}  result  detail")
    print(f"{'-' * width}  ------  ------")
    for r in results:
        status = "ok" if r["ok"] else "FAILED"
        print(f"{r['name']:<{width}}  {status:<6}  {r['detail']}")
        if not r["ok"] and r.get("traceback"):
            print(r["traceback"])
    failed = sum(not r["ok"] for r in results)
    print(f"\n{len(results) - failed} passed, {failed} failed")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m drills")
    parser.add_argument("only", nargs="*", help="drills to run, e.g. crash (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller bursts, for a smoke run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openline.settings")
    # Stopped from outside (a CI timeout): exit through atexit, which stops what drills started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: list[dict] = []
    for name in _names(args.only):
        print(f"== {name}", flush=True)
        for result in _run_one(name, args):
            status = "ok" if result["ok"] else "FAILED"
            print(f"   {result['name']}: {status}  {result['detail']}", flush=True)
            results.append(result)
        print(f"   [{results[-1]['seconds']}s, load {results[-1]['load']}]", flush=True)
    _print(results)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
