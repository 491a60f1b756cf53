"""The runner of ``make bench``: one table, the same in JSON, exit 1 when a target is missed."""

from __future__ import annotations

import json
import sys
import types

import pytest

from bench import __main__ as runner
from bench.common import figure


def _install(monkeypatch, name: str, run) -> None:
    module = types.ModuleType(f"bench.{name}")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"bench.{name}", module)
    monkeypatch.setattr(runner, "available", lambda: [name])


def test_every_figure_sits_beside_its_ceiling_with_the_ratio(monkeypatch, tmp_path, capsys):
    seen = {}

    def run(args):
        seen["quick"] = args.quick
        return [
            figure(
                "captures",
                900,
                "captures/s",
                ceiling=("raw INSERTs", 9000, "rows/s"),
                target=">= 10% of the ceiling",
                ok=True,
            ),
            figure("page p95", 26.4, "ms", ceiling=("same SQL direct", 2.0, "ms")),
        ]

    _install(monkeypatch, "bench_zz_fake", run)
    out = tmp_path / "latest.json"
    assert runner.main(["zz_fake", "--quick", "--no-lock", "--json", str(out)]) == 0
    assert seen["quick"] is True
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("benchmark"))
    assert [c.strip() for c in header.split("|")] == list(runner.COLUMNS)
    row = next(
        line for line in printed.splitlines() if line.startswith("zz_fake") and "captures" in line
    )
    cells = [c.strip() for c in row.split("|")]
    assert cells[2] == "900 captures/s"
    assert cells[3] == "9,000 rows/s (raw INSERTs)"
    assert cells[4] == "10.0%"  # a throughput: the fraction of the ceiling reached
    assert cells[6] == "yes"
    latency = next(line for line in printed.splitlines() if "page p95" in line)
    assert "13.2×" in latency  # a latency: how many times the ceiling it takes
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["benchmarks"] == ["bench_zz_fake"]
    assert report["results"][0]["ratio"] == 0.1
    assert report["results"][0]["ceiling"] == {
        "name": "raw INSERTs",
        "value": 9000,
        "unit": "rows/s",
    }
    assert report["table"][1]["ratio"] == "13.2×"
    assert len(report["load_average_before"]) == 3


def test_a_missed_target_or_a_broken_benchmark_fails_the_run(monkeypatch, tmp_path, capsys):
    _install(
        monkeypatch,
        "bench_zz_slow",
        lambda args: [figure("export", 20_000, "rows/s", target=">= 50,000 rows/s", ok=False)],
    )
    out = tmp_path / "latest.json"
    assert runner.main(["zz_slow", "--no-lock", "--json", str(out)]) == 1
    assert "| NO" in capsys.readouterr().out

    def broken(args):
        raise RuntimeError("the server did not start")

    _install(monkeypatch, "bench_zz_broken", broken)
    assert runner.main(["zz_broken", "--no-lock", "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["results"][0]["ok"] is False
    assert "the server did not start" in report["results"][0]["detail"]


def test_an_unknown_benchmark_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "available", lambda: ["bench_export"])
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["no_such_bench", "--no-lock", "--json", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2


def test_the_runner_waits_while_another_benchmark_holds_the_lock(tmp_path, monkeypatch):
    import subprocess
    import threading
    import time

    lock = tmp_path / "bench.lock"
    monkeypatch.setattr(runner, "LOCK", str(lock))
    holder = subprocess.Popen(["flock", str(lock), "sleep", "2"])
    try:
        deadline = time.monotonic() + 10
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let flock(1) take it
        entered = threading.Event()

        def take() -> None:
            with runner.bench_lock(True):
                entered.set()

        waiter = threading.Thread(target=take)
        waiter.start()
        assert not entered.wait(0.8)  # another run holds the lock: the runner waits
        holder.wait(timeout=10)
        assert entered.wait(5)
        waiter.join()
    finally:
        holder.kill()


def test_a_run_started_under_flock_uses_the_lock_it_inherited(tmp_path):
    import subprocess

    from bench.common import ROOT

    lock = tmp_path / "bench.lock"
    code = (
        f"from bench import __main__ as r; r.LOCK = {str(lock)!r}\n"
        "with r.bench_lock(True): print('measuring')"
    )
    done = subprocess.run(
        ["flock", str(lock), sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "measuring"
    assert "waiting for" not in done.stdout
