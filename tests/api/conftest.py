"""A real server per test module: uvicorn on a free local port, spoken to over HTTP with httpx.

Each store test runs against SQLite and, where a PostgreSQL server answers at 127.0.0.1:5432, against a
fresh PostgreSQL database made for the run (``JIESU_TEST_POSTGRES_URL`` overrides the server)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import httpx
import pytest
import uvicorn

ADMIN_KEY = "jsk_admin_test_key_0123456789"
POSTGRES = os.environ.get("JIESU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_database() -> str | None:
    """Create a throwaway database; None when no server answers (then PostgreSQL tests fail loudly in CI)."""
    from sqlalchemy import create_engine, text

    name = f"jiesu_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return POSTGRES.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    engine = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


class Server:
    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'jiesu.db'}"
        return
    url = postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def service(database_url, sample_model, data_dir):
    from serving.api.app import create_app
    from serving.settings import Settings

    settings = Settings(database_url=database_url, model_path=sample_model, bootstrap_admin_key=ADMIN_KEY,
                        data_dir=data_dir)
    app = create_app(settings)
    with Server(app) as base_url:
        yield base_url, app


@pytest.fixture(scope="module")
def base_url(service):
    return service[0]


def client(base_url: str, key: str | None = ADMIN_KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def admin(base_url):
    with client(base_url) as c:
        yield c


@pytest.fixture(scope="module")
def make_key(service):
    """Create an API key of a role directly in the service's database (what ``jiesu keys create`` does)."""
    from serving.services.keys import create_key

    app = service[1]

    def make(role: str, unit_id: str | None = None) -> str:
        with app.state.jiesu.sessions() as session:
            return create_key(session, role, unit_id)

    return make
