"""`/openapi.json` describes the sandbox accurately: schemathesis checks every operation."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from bulk_contacts.sandbox import SandboxConfig, SandboxServer

from .conftest import get_token
from .thorough import examples


@pytest.fixture(scope="module")
def live_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(port=0)) as server:
        server.store.create_site(12345, {"external_site_id": "a", "name": "A", "timezone": "UTC"})
        server.store.create_contact(
            1, {"external_contact_id": "c", "first_name": "F", "last_name": "L"}
        )
        yield server


@pytest.fixture(scope="module")
def token(live_sandbox: SandboxServer) -> str:
    return get_token(live_sandbox.url)


def operations(url: str) -> list:
    import schemathesis  # here, not at the top: each test process collects this file

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def check_operation(cases, base_url: str, headers: dict[str, str]) -> None:
    @given(case=cases)
    @settings(
        max_examples=examples(25),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def conforms(case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers)

    conforms()


def test_every_operation_conforms_to_its_description(live_sandbox, token) -> None:
    """Bounded: 10 valid and 10 invalid requests per operation (25 in a thorough run), each
    checked by every check."""
    from schemathesis.generation import GenerationMode

    auth = {"Authorization": f"Bearer {token}"}
    checked = []
    for operation, mode in product(operations(live_sandbox.url), GenerationMode):
        headers = {} if operation.path == "/oauth/token" else auth
        check_operation(operation.as_strategy(generation_mode=mode), live_sandbox.url, headers)
        checked.append(f"{mode} {operation.method.upper()} {operation.path}")
    assert len(checked) == 9 * 2


def test_every_endpoint_and_error_is_described(live_sandbox: SandboxServer) -> None:
    spec = httpx.get(f"{live_sandbox.url}/openapi.json").json()
    contacts = "/partner/v1/dealers/{dealerId}/sites/{siteId}/contacts"
    expected = {
        "/oauth/token": {"post"},
        "/partner/v1/dealers/{dealerId}/sites": {"get", "post"},
        "/partner/v1/dealers/{dealerId}/sites/{siteId}": {"get"},
        contacts: {"get", "post"},
        contacts + "/{contactId}": {"get", "put", "delete"},
    }
    assert {path: set(ops) for path, ops in spec["paths"].items()} == expected
    error_ref = "#/components/schemas/ErrorBody"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"400", "401"} & statuses or path != "/oauth/token"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema_ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema_ref == error_ref, (method, path, status)
            if path.startswith("/partner/"):
                assert {"401", "403", "404", "429", "500"} <= statuses, (method, path)
            if method in {"post", "put"} and path.startswith("/partner/"):
                assert {"400", "409", "422"} <= statuses, (method, path)
