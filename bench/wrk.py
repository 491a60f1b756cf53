"""Drive HTTP load with ``wrk`` (a C load generator that leaves the cores to the server).

``ensure_wrk()`` finds the binary (installing Debian's ``wrk`` when running as root);
``run_wrk()`` runs it against one URL and returns the figures a benchmark needs. A Python load
generator tops out near 500 requests/s on two shared cores and would starve the server it
measures; ``wrk`` with one thread uses a fraction of one core at several thousand requests/s.

A Lua script (``lua_script``: its source text) may set ``wrk.method``, ``wrk.body`` and
``wrk.headers`` or define ``request()``; it must not define ``done()``, which this module
appends to report the figures as one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

# Prints what run_wrk parses: wrk's summary (microseconds) as one JSON line.
_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%f,' ..
    '"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


class WrkMissing(RuntimeError):
    """wrk is not installed and cannot be installed from here."""


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed requests (any status)
    rate: float  # completed requests per second
    p50_ms: float
    p99_ms: float
    avg_ms: float
    non2xx: int  # answers with a status of 400 or more (wrk's "Non-2xx or 3xx responses")
    errors: int  # connect, read, write errors and timeouts


def ensure_wrk() -> str:
    """Return the path of ``wrk``; install Debian's package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise WrkMissing(
            "The throughput benchmarks need wrk (a C HTTP load generator): "
            "install it with `sudo apt-get install wrk` (Debian/Ubuntu) or from "
            "https://github.com/wg/wrk, then run make bench again."
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise WrkMissing(f"apt-get could not install wrk:\n{done.stderr[-1500:]}")
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing("wrk was installed but is not on PATH")
    return found


def run_wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    lua_script: str | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Load ``url`` with ``connections`` kept-open connections for ``seconds``; return the figures."""
    binary = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="openline-wrk-") as script:
        script.write((lua_script or "") + "\n" + _DONE)
        script.flush()
        command = [
            binary,
            "-c",
            str(connections),
            "-t",
            str(max(1, min(threads, connections))),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            f"{max(1, round(timeout_s))}s",
            "-s",
            script.name,
            url,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("WRKJSON") :])
    seconds_run = data["duration_us"] / 1e6 or 1e-9
    return WrkResult(
        requests=data["requests"],
        rate=data["requests"] / seconds_run,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        avg_ms=data["mean_us"] / 1000,
        non2xx=data["non2xx"],
        errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
    )


def post_json_script(body: str, headers: dict[str, str] | None = None) -> str:
    """Return a Lua script that POSTs ``body`` as JSON (each request the same body)."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    return "\n".join(lines) + "\n"


def _lua_string(text: str) -> str:
    # Lua decimal escapes for every byte outside printable ASCII, quotes and backslashes.
    out = []
    for byte in text.encode():
        if 32 <= byte < 127 and byte not in (34, 92):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'
