"""Schemathesis generates requests from the OpenAPI schema against a live server: none may get a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import ADMIN_KEY, Server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, sample_model, data_dir):
    from serving.api.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'jiesu.db'}",
                              model_path=sample_model, bootstrap_admin_key=ADMIN_KEY, data_dir=data_dir))
    with Server(app) as url:
        yield url


def test_no_server_errors(fuzz_server):
    """Every operation in the schema, 30 generated requests each (the pytest plugin is driven by hand:
    its collection hook does not support this pytest)."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case):
            response = case.call(headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        exercise()
    assert not failures, "\n".join(failures[:10])
