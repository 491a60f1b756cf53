"""Every status an operation can answer is in the OpenAPI document, with the Error body."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema() -> dict:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200  # public: it describes the API, it holds no data
    return response.json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_operation_declares_the_statuses_it_can_answer(schema):
    missing = []
    found = list(operations(schema))
    assert len(found) >= 20
    for path, method, operation in found:
        declared = set(operation["responses"])
        needed = {"401", "403", "429"}
        if operation.get("parameters") or operation.get("requestBody"):
            needed.add("422")
        if operation.get("requestBody"):
            needed.add("400")
        if "{" in path:
            needed.add("404")
        if needed - declared:
            missing.append((method.upper(), path, sorted(needed - declared)))
    assert missing == []


def test_error_statuses_use_the_error_schema(schema):
    assert {"code", "detail"} <= set(schema["components"]["schemas"]["Error"]["properties"])
    for _path, _method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (status, operation["operationId"])


def test_both_ways_to_authenticate_are_documented(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["TokenAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["ConsoleSessionAuth"]["in"] == "cookie"
    for _path, _method, operation in operations(schema):
        names = {name for entry in operation["security"] for name in entry}
        assert names == {"TokenAuth", "ConsoleSessionAuth"}


def test_an_anonymous_call_gets_the_documented_401_body():
    response = Client().get("/api/v1/consents/records")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert "Bearer" in response.json()["detail"]
