"""Service commands: keys, units import, corrections export feeding training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import SAMPLE


def jiesu(database_url, data_dir, *args):
    env = {**os.environ, "JIESU_DATABASE_URL": database_url, "JIESU_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "serving.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=180)


def test_keys_create_prints_a_working_key(database_url, data_dir, base_url):
    import httpx

    result = jiesu(database_url, data_dir, "keys", "create", "--role", "reviewer")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("jsk_")
    assert httpx.get(f"{base_url}/v1/review/queue", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    bad = jiesu(database_url, data_dir, "keys", "create", "--role", "unit")
    assert bad.returncode == 2 and "needs --unit" in bad.stderr
    bad = jiesu(database_url, data_dir, "keys", "create", "--role", "mayor")
    assert bad.returncode == 2 and "role must be one of" in bad.stderr


def test_units_import_reads_an_official_list(database_url, data_dir, tmp_path):
    good = jiesu(database_url, data_dir, "units", "import", data_dir / "admin" / "beijing_streets.csv")
    assert good.returncode == 0 and "349 unchanged" in good.stdout
    broken = tmp_path / "streets.csv"
    broken.write_text("code,name\n1,某街道\n", encoding="utf-8")
    bad = jiesu(database_url, data_dir, "units", "import", broken)
    assert bad.returncode == 2 and "areaCode" in bad.stderr


def test_corrections_export_is_training_data(database_url, data_dir, admin, taxonomy, tmp_path):
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "望京街道")
    tid = admin.post("/v1/appeals", json={"text": "望京西园三区楼下的共享单车堆成山，人都过不去。"}).json()["ticket_id"]
    assert admin.post(f"/v1/tickets/{tid}/assign", json={"primary_unit_id": street.id, "category": "交通运输",
                                                         "urgency": 3}).status_code == 200
    out = tmp_path / "corrections.jsonl"
    result = jiesu(database_url, data_dir, "corrections", "export", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert any(r["text"].startswith("望京西园") and r["category"] == "交通运输" for r in rows)
    trained = jiesu(database_url, data_dir, "train", "--data", SAMPLE, "--data", out, "--out", tmp_path / "m")
    assert trained.returncode == 0, trained.stderr


def test_a_corrected_path_is_learnt_by_the_next_training(database_url, data_dir, admin, taxonomy, tmp_path):
    """A reviewer files an appeal under a second- and third-level node, with its department and company;
    the correction is exported, and a router trained with it reads that path, department and company."""
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    text = "永安里东区的暖气片从昨天起冰凉，热力站说管道检修，老人家里只有十二度。"
    tid = admin.post("/v1/appeals", json={"text": text}).json()["ticket_id"]
    answer = admin.post(f"/v1/tickets/{tid}/assign", json={
        "primary_unit_id": street.id, "co_unit_ids": ["dept:management@110105", "company:heating"],
        "category": "城乡建设/供暖/停暖与未供暖", "urgency": 2, "appeal_type": "求助"})
    assert answer.status_code == 200
    assigned = [e for e in admin.get(f"/v1/tickets/{tid}").json()["events"] if e["kind"] == "assigned"][-1]
    assert assigned["payload"]["corrected"] and assigned["payload"]["department"] == "management"
    out = tmp_path / "corrections.jsonl"
    assert jiesu(database_url, data_dir, "corrections", "export", "--out", out).returncode == 0
    row = next(json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()
               if json.loads(line)["text"] == text)
    assert (row["category"], row["department"], row["company"]) == ("城乡建设/供暖/停暖与未供暖", "management", "heating")
    model = tmp_path / "m"
    trained = jiesu(database_url, data_dir, "train", "--data", SAMPLE, "--data", out, "--out", model,
                    "--validation", "0", "--test", "0")
    assert trained.returncode == 0, trained.stderr
    appeals = tmp_path / "in.jsonl"
    appeals.write_text(json.dumps({"id": "a", "text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    predicted = tmp_path / "out.jsonl"
    assert jiesu(database_url, data_dir, "predict", "--model", model, "--input", appeals, "--output",
                 predicted).returncode == 0
    got = json.loads(predicted.read_text(encoding="utf-8"))
    assert got["category_guess"] == ["城乡建设", "供暖", "停暖与未供暖"]
    assert got["department"] == "management" and got["company"] == "heating"
