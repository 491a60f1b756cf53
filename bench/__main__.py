"""``python -m bench [names] [--quick]``: every figure next to the ceiling measured in the same run.

Each ``bench/bench_<name>.py`` defines ``run(args) -> list[dict]``. A result has ``name``,
``value``, ``unit``, optionally ``target`` (text), ``ok`` (bool), ``detail`` (text), and for a
figure with a ceiling ``ceiling = {"name", "value", "unit"}`` (measured in the same run) and
``ratio`` = value / ceiling (for a latency or a cost: how many times the ceiling; for a
throughput: the fraction of the ceiling reached).

The runner prints one table (benchmark, figure, measured, ceiling, ratio, target, met?), writes
the same to ``bench/results/latest.json`` with the run's duration and the machine's load, and
exits 1 when a target is missed or a benchmark failed. A failing benchmark becomes a failed row;
the others still run. The whole run holds ``/tmp/openline-bench.lock`` (one benchmark at a time
on a shared machine); ``--no-lock`` skips that.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import importlib
import json
import os
import pkgutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = "/tmp/openline-bench.lock"
# Units of a cost (lower is better): their ratio reads "× the ceiling"; others a fraction of it.
COST_UNITS = {"ms", "s", "us", "µs", "MB", "KB", "B", "bytes"}
COLUMNS = ("benchmark", "figure", "measured", "ceiling", "ratio", "target", "met?")


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}"


def ratio_text(result: dict) -> str:
    ratio = result.get("ratio")
    if ratio is None or "ceiling" not in result:
        return ""
    if result.get("unit") in COST_UNITS:
        return f"{ratio:.1f}×"
    return f"{ratio:.1%}"


def cells(result: dict) -> tuple[str, ...]:
    ceiling = result.get("ceiling")
    ceiling_text = ""
    if ceiling:
        ceiling_text = f"{_number(ceiling['value'])} {ceiling['unit']} ({ceiling['name']})"
    met = "" if "ok" not in result else ("yes" if result["ok"] else "NO")
    return (
        result["bench"].removeprefix("bench_"),
        result["name"],
        f"{_number(result['value'])} {result['unit']}".strip(),
        ceiling_text,
        ratio_text(result),
        result.get("target", ""),
        met,
    )


def table(results: list[dict]) -> str:
    rows = [COLUMNS] + [cells(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if n == 0:
            lines.append("-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _inherited_lock() -> bool:
    """Whether this process already holds the lock through a descriptor it inherited.

    ``flock /tmp/openline-bench.lock python -m bench ...`` passes its locked descriptor down;
    locking the file again through a new descriptor would wait for ourselves for ever.
    """
    target = os.path.realpath(LOCK)
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.path.realpath(f"/proc/self/fd/{fd}") != target:
                continue
            # Locking the same open file description again succeeds only if it is ours.
            fcntl.flock(int(fd), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            continue
    return False


@contextlib.contextmanager
def bench_lock(enabled: bool):
    """Hold the machine-wide benchmark lock (waiting for another run to finish)."""
    if not enabled or _inherited_lock():
        yield
        return
    with open(LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {LOCK} (another benchmark is running)", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_module(name: str, args) -> list[dict]:
    started = time.monotonic()
    print(f"== {name}", flush=True)
    try:
        module = importlib.import_module(f"bench.{name}")
        results = list(module.run(args))
    except Exception as exc:  # a broken benchmark is a failed row, not a lost table
        traceback.print_exc()
        results = [
            {
                "name": "benchmark failed",
                "value": 0,
                "unit": "",
                "ok": False,
                "detail": repr(exc)[:500],
            }
        ]
    for result in results:
        result["bench"] = name
        print("   " + " | ".join(c for c in cells(result)[1:] if c), flush=True)
    print(f"   [{time.monotonic() - started:.1f}s]", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "only", nargs="*", help="benchmarks to run, e.g. consent_list export (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-lock", action="store_true", help=f"do not hold {LOCK}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "results" / "latest.json",
        help="where to write the JSON",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openline.settings")
    names = available()
    if args.list:
        print("\n".join(n.removeprefix("bench_") for n in names))
        return 0
    if args.only:
        wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in args.only]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(
                f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(names)}"
            )
        names = wanted
    started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    load_before = load_average()
    results: list[dict] = []
    if {"bench_consent_list", "bench_export"} & set(names):
        # Seeding (or checking) the cached registry needs no lock: it runs at low priority.
        from bench.registry_seed import ensure_registry

        ensure_registry(args.quick, log=lambda text: print(text, flush=True))
    with bench_lock(not args.no_lock):
        measuring = time.monotonic()
        for name in names:
            results.extend(run_module(name, args))
    seconds = time.monotonic() - started
    measured = time.monotonic() - measuring
    print()
    print(table(results))
    missed = [r for r in results if r.get("ok") is False]
    print(
        f"\n{len(results)} figures, {len(missed)} missed, {seconds:.0f} s"
        f" ({measured:.0f} s measuring, the rest seeding/checking data and waiting for the lock);"
        f" load average {load_before} before, {load_average()} after; {os.cpu_count()} cores"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started_at": started_at.isoformat(),
        "seconds": round(seconds, 1),
        "measuring_seconds": round(measured, 1),
        "quick": args.quick,
        "benchmarks": names,
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "columns": list(COLUMNS),
        "table": [dict(zip(COLUMNS, cells(r), strict=True)) for r in results],
        "results": results,
    }
    args.json.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
