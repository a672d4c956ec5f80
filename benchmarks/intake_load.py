"""Intake under load: the service on loopback, driven by bounded concurrent clients, beside the model alone.

For each configuration (database × worker count) a fresh database is made, ``jiesu serve`` is started
on a free loopback port with the given bundle, warmed up, and then ``--clients`` concurrent clients send
real appeals (titles and texts of the tipdm files, each made unique) to ``POST /v1/appeals`` for
``--seconds`` seconds, each waiting for its answer before sending the next (a closed loop: the rate is
what the service sustains). In the same run the model alone classifies the same appeals in one thread, so
the table shows the service's cost as a ratio to classification.

    .venv/bin/python benchmarks/intake_load.py --model var/models/router --seconds 60 --clients 16 \\
        --config sqlite:1 --config postgresql:2 --out benchmarks/results/intake_load.json

Prints a table (appeals/s, p50, p99, errors per configuration) and writes JSON. PostgreSQL needs a
server (``--postgres``, default the local one); each run uses its own database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KEY = "jsk_bench_intake_load_0123456789abcdef"


def appeals(data_dir: Path, n: int, seed: int = 7) -> list[dict]:
    frame = pd.read_csv(data_dir / "tipdm2020c" / "appeals_with_votes.csv", dtype=str).fillna("")
    frame = frame[frame["text"].str.len() > 10].sample(n=min(n, len(frame)), random_state=seed)
    return [{"title": t[:200], "text": x[:4000]} for t, x in zip(frame["title"], frame["text"])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_alone(model: Path, data_dir: Path, items: list[dict]) -> dict:
    from serving.model.appeals import AppealInput, validate_appeal
    from serving.model.predictor import Predictor
    from taxonomy import load_taxonomy

    predictor = Predictor(model, load_taxonomy("beijing", data_dir=data_dir))
    inputs = [validate_appeal(AppealInput(text=a["text"], title=a["title"])) for a in items]
    for appeal in inputs[:20]:
        predictor.predict_one(appeal)
    times = []
    for appeal in inputs:
        start = time.perf_counter()
        predictor.predict_one(appeal)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {"appeals": len(inputs), "per_s": round(len(inputs) / sum(times), 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


class Service:
    def __init__(self, database: str, workers: int, model: Path, data_dir: Path, postgres: str, log: Path):
        self.kind, self.workers, self.port = database, workers, free_port()
        self.tmp = tempfile.mkdtemp(prefix="jiesu-load-")
        self.pg_name = None
        if database == "sqlite":
            self.url = f"sqlite:///{self.tmp}/jiesu.db"
        else:
            from sqlalchemy import create_engine, text

            self.pg_name = f"jiesu_load_{uuid.uuid4().hex[:8]}"
            engine = create_engine(postgres, isolation_level="AUTOCOMMIT")
            with engine.connect() as c:
                c.execute(text(f'CREATE DATABASE "{self.pg_name}"'))
            engine.dispose()
            self.postgres = postgres
            self.url = postgres.rsplit("/", 1)[0] + "/" + self.pg_name
        env = {**os.environ, "JIESU_DATABASE_URL": self.url, "JIESU_MODEL_PATH": str(model.resolve()),
               "JIESU_BOOTSTRAP_ADMIN_KEY": KEY, "JIESU_DATA_DIR": str(data_dir)}
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.cli", "serve", "--workers", str(workers), "--port", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited ({self.process.returncode}); see {self.log.name}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2).json().get("status") == "ready":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the service did not become ready")

    def close(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        if self.pg_name:
            from sqlalchemy import create_engine, text

            engine = create_engine(self.postgres, isolation_level="AUTOCOMMIT")
            with engine.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
            engine.dispose()


async def drive(base: str, items: list[dict], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                                 limits=limits) as client:
        stop_at = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < stop_at:
                i = next(counter)
                item = items[i % len(items)]
                body = {"title": item["title"], "text": f"{item['text']}（编号{i}）"}
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/appeals", json=body)
                    code = str(response.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                latencies.append(time.perf_counter() - start)
                statuses[code] = statuses.get(code, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    ok = statuses.get("201", 0)
    return {"seconds": round(elapsed, 1), "requests": len(latencies), "acknowledged": ok,
            "per_s": round(ok / elapsed, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "errors": len(latencies) - ok, "statuses": statuses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("JIESU_DATA_DIR", ROOT.parent / "shared" / "data")))
    parser.add_argument("--config", action="append", default=[],
                        help="DATABASE:WORKERS, e.g. sqlite:1 or postgresql:2 (repeatable; default sqlite:1)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--appeals", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get(
        "JIESU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    configs = []
    for spec in args.config or ["sqlite:1"]:
        database, _, workers = spec.partition(":")
        if database not in ("sqlite", "postgresql") or not workers.isdigit() or int(workers) < 1:
            parser.error(f"--config: {spec!r} is not sqlite:N or postgresql:N")
        configs.append((database, int(workers)))
    items = appeals(args.data_dir, args.appeals)
    alone = model_alone(args.model, args.data_dir, items)
    results = []
    for database, workers in configs:
        log = Path(tempfile.gettempdir()) / f"jiesu-load-{database}-{workers}.log"
        service = Service(database, workers, args.model, args.data_dir, args.postgres, log)
        try:
            service.wait()
            asyncio.run(drive(service.base, items, args.clients, args.warmup))
            row = asyncio.run(drive(service.base, items, args.clients, args.seconds))
        finally:
            service.close()
        row.update({"database": database, "workers": workers, "clients": args.clients,
                    "ratio_to_model": round(alone["per_s"] / row["per_s"], 1) if row["per_s"] else None})
        results.append(row)
    header = f"{'database':<11}{'workers':>8}{'clients':>8}{'appeals/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'model/service':>15}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['database']:<11}{r['workers']:>8}{r['clients']:>8}{r['per_s']:>11}{r['p50_ms']:>9}{r['p99_ms']:>9}"
              f"{r['errors']:>8}{r['ratio_to_model']:>15}")
    print(f"{'model alone':<27}{alone['per_s']:>11}{alone['p50_ms']:>9}{alone['p99_ms']:>9}   (one thread, same appeals)")
    record = {"model": str(args.model), "model_alone": alone, "results": results, "seconds": args.seconds,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
