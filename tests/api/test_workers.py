"""Several workers on PostgreSQL: ``jiesu serve --workers 2`` serves from two processes; one of them is
killed with SIGKILL while clerks keep sending appeals, and every appeal the service acknowledged is in
the database afterwards. Background work is led by one process only (``store.locks``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.conftest import ADMIN_KEY, drop_postgres_database, free_port, postgres_database

TEXTS = ["朝阳区望京街道的路灯坏了一个星期，晚上很黑。", "海淀区中关村街道小区停水两天了，没有通知。",
         "东城区和平里街道楼下饭馆油烟很大，熏得没法开窗。", "西城区月坛街道垃圾桶满了没人清运，臭味很大。"]


@pytest.fixture()
def pg_url():
    url = postgres_database()
    yield url
    drop_postgres_database(url)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes: the children of the supervisor that are not multiprocessing helpers."""
    return [c for c in _children(pid) if "multiprocessing.resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]


def test_two_workers_lose_no_acknowledged_appeal_when_one_is_killed(pg_url, sample_model, data_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "JIESU_DATABASE_URL": pg_url, "JIESU_MODEL_PATH": str(sample_model),
           "JIESU_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "JIESU_DATA_DIR": str(data_dir), "JIESU_SUPERVISE_INTERVAL_S": "1"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--workers", "2", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            started = (tmp_path / "serve.log").read_text().count("Application startup complete")
            if len(_workers(server.pid)) == 2 and started >= 2:
                try:
                    if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        else:
            raise AssertionError("two workers did not come up:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        acknowledged: list[int] = []
        errors: list[str] = []
        stop = threading.Event()

        def clerk(n: int) -> None:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as c:
                i = 0
                while not stop.is_set():
                    try:
                        r = c.post("/v1/appeals", json={"text": TEXTS[(n + i) % len(TEXTS)] + f"（第{n}-{i}次）"})
                    except httpx.HTTPError as exc:  # the killed worker's open connections break: not acknowledged
                        errors.append(type(exc).__name__)
                        i += 1
                        continue
                    if r.status_code == 201:
                        acknowledged.append(r.json()["ticket_id"])
                    elif r.status_code >= 500:
                        errors.append(str(r.status_code))
                    i += 1

        threads = [threading.Thread(target=clerk, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        time.sleep(4)
        victim = _workers(server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(6)  # the survivor serves on; the supervisor starts a new worker
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert len(acknowledged) > 20, errors[:5]
        engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as connection:
            stored = set(connection.execute(text("SELECT id FROM tickets")).scalars())
        engine.dispose()
        lost = [t for t in acknowledged if t not in stored]
        assert lost == [] and len(set(acknowledged)) == len(acknowledged)
        assert victim not in _workers(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_one_process_leads_the_background_work_and_another_takes_over(pg_url):
    from serving.store.db import make_engine
    from serving.store.locks import Leader, deployment_lock

    first, second = make_engine(pg_url), make_engine(pg_url)
    a, b = Leader(first, "supervision"), Leader(second, "supervision")
    assert a.held() and not b.held() and a.held()
    a.release()  # the leading process ends: its connection closes
    assert b.held() and not a.held()
    b.release()
    order = []

    def step(name, engine):
        with deployment_lock(engine, "startup"):
            order.append(f"{name} in")
            time.sleep(0.3)
            order.append(f"{name} out")

    threads = [threading.Thread(target=step, args=(n, e)) for n, e in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0].endswith("in") and order[1] == order[0].replace("in", "out")  # never interleaved
    first.dispose()
    second.dispose()


def test_sqlite_refuses_several_workers(tmp_path):
    result = subprocess.run([sys.executable, "-m", "serving.cli", "serve", "--workers", "2",
                             "--database-url", f"sqlite:///{tmp_path / 'j.db'}"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "--workers: SQLite serves from one process" in result.stderr
