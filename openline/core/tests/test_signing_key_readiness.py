"""Production refuses to start without a usable signing key, and /readyz reports the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from openline.testing.keys import write_signing_key

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = {
    "OPENLINE_ENV": "production",
    "OPENLINE_SECRET_KEY": "x" * 40,
    "OPENLINE_ALLOWED_HOSTS": "chat.example.com",
    "OPENLINE_PUBLIC_URL": "https://chat.example.com",
}


def _start_settings(tmp_path: Path, key_file: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env.update(
        {
            **PRODUCTION,
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "OPENLINE_VAR_DIR": str(tmp_path / "var"),
            "OPENLINE_SIGNING_KEY_FILE": str(key_file),
        }
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _not_ed25519(path: Path) -> Path:
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.pem", "missing.pem does not exist"),
        (lambda d: (d / "junk.pem").write_text("not a key") and d / "junk.pem", "not a PEM"),
        (lambda d: _not_ed25519(d / "ec.pem"), "not an Ed25519 private key"),
        (lambda d: d, "cannot be read"),  # a directory
    ],
)
def test_production_refuses_to_start_without_a_usable_signing_key(tmp_path, make, message):
    result = _start_settings(tmp_path, make(tmp_path))
    assert result.returncode != 0 and "started" not in result.stdout
    refusal = [line for line in result.stderr.splitlines() if "refuses to start" in line]
    assert len(refusal) == 1, result.stderr
    assert "Openline refuses to start in production mode: OPENLINE_SIGNING_KEY_FILE" in refusal[0]
    assert message in refusal[0]


def test_production_starts_with_an_ed25519_key_file(tmp_path):
    result = _start_settings(tmp_path, Path(write_signing_key(tmp_path / "registry.pem")))
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_readyz_reports_an_unavailable_signing_key_with_503(client, db, settings, tmp_path):
    settings.OPENLINE_ENV = "production"  # production never generates a missing key
    settings.OPENLINE_SIGNING_KEY_FILE = str(tmp_path / "lost.pem")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["signing_key"] == "unavailable"
    assert response.json()["status"] == "not ready"


def test_readyz_reports_a_corrupt_signing_key_with_503(client, db, settings, tmp_path):
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    settings.OPENLINE_SIGNING_KEY_FILE = str(broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["signing_key"] == "unavailable"


def test_readyz_reports_a_working_signing_key(client, db, settings, tmp_path):
    settings.OPENLINE_SIGNING_KEY_FILE = write_signing_key(tmp_path / "good.pem")
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["signing_key"] == "ok"
