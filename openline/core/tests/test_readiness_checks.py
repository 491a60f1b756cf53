"""/readyz runs the checks the apps register, so core needs to know none of them."""

from __future__ import annotations

import logging

import pytest

from openline.core import readiness


@pytest.fixture
def failing_check():
    def broken() -> None:
        raise OSError("disk gone")

    readiness.register_check("test_store", broken, failure="unreachable")
    yield
    readiness._checks.pop("test_store")


def test_readyz_answers_503_naming_a_registered_check_that_fails(client, db, failing_check, caplog):
    with caplog.at_level(logging.WARNING, logger="openline.core.views"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["test_store"] == "unreachable"
    # The apps' own checks still run alongside (the registry's signing key).
    assert body["checks"]["signing_key"] == "ok"
    assert "readyz: test store unreachable: OSError" in caplog.text
    assert "disk gone" not in caplog.text


def test_the_consent_registry_registers_its_signing_key_check():
    assert "signing_key" in [check.name for check in readiness.registered_checks()]
