"""The ``jiesu`` command: real subprocesses; bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE

JIESU = [sys.executable, "-m", "serving.cli"]


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*JIESU, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jiesu: error:"), result.stderr
    for word in words:
        assert word in lines[0]


def test_help_everywhere():
    for args in ([], ["train"], ["predict"], ["evaluate"], ["taxonomy"], ["taxonomy", "places"]):
        result = run(*args, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def test_train_predict_evaluate_round_trip(tmp_path):
    bundle = tmp_path / "model"
    trained = run("train", "--data", SAMPLE, "--out", bundle)
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["bundle"] == str(bundle) and 0 <= summary["macro_f1"] <= 1

    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a", "title": "暖气不热", "text": "朝阳区南磨房地区和馨家园暖气一直不热，室温只有14度。"},
                   ensure_ascii=False) + "\n"
        + json.dumps({"id": "b", "text": "请问在海淀区怎么办理居住证？"}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    out = tmp_path / "out.jsonl"
    predicted = run("predict", "--model", bundle, "--input", source, "--output", out)
    assert predicted.returncode == 0, predicted.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]
    for line in lines:
        assert {"id", "category", "category_confidence", "category_top3", "urgency", "urgency_reason",
                "appeal_type", "district", "street"} <= set(line)
    assert lines[0]["urgency"] == 2 and lines[0]["district"] == "朝阳区" and lines[0]["street"] == "南磨房地区"
    assert lines[1]["appeal_type"] == "咨询" and lines[1]["urgency"] == 4 and lines[1]["street"] is None

    evaluated = run("evaluate", "--model", bundle, "--data", SAMPLE, "--out", tmp_path / "report")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["n"] == 240


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "model"
    assert run("train", "--data", SAMPLE, "--out", out).returncode == 0
    return out


@pytest.mark.parametrize("content, words", [
    (b'{"id": 1, "text": ""}\n', ["appeal 1", "text", "empty"]),
    (b'{"id": 1, "text": "   "}\n', ["text", "empty"]),
    (b'{"id": 1, "title": "x"}\n', ["line 1", "text", "missing"]),
    (b'{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', ["line 2", "not valid JSON"]),
    (b'{"id": 1, "text": "\xff\xfe"}\n', ["line 1", "UTF-8"]),
    (b'{"id": 1, "text": 42}\n', ["text", "string"]),
    (('{"id": 1, "text": "' + "长" * 20001 + '"}\n').encode(), ["20000"]),
    (b'[1, 2]\n', ["JSON object"]),
])
def test_predict_refuses_bad_input_with_one_line(bundle, tmp_path, content, words):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(content)
    out = tmp_path / "out.jsonl"
    assert_one_line_error(run("predict", "--model", bundle, "--input", source, "--output", out), *words)
    assert not out.exists()


def test_missing_and_corrupt_bundles(tmp_path, bundle):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "路灯坏了"}\n', encoding="utf-8")
    assert_one_line_error(run("predict", "--model", tmp_path / "nothing", "--input", source, "--output",
                              tmp_path / "o.jsonl"), "not a directory")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("predict", "--model", tmp_path / "empty", "--input", source, "--output",
                              tmp_path / "o.jsonl"), "manifest.json is missing")


def test_train_refuses_bad_data(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,text,category\n噪音,很吵,城管\n", encoding="utf-8")
    assert_one_line_error(run("train", "--data", bad, "--out", tmp_path / "m"), "row 1", "category", "城管")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("title,body\n噪音,很吵\n", encoding="utf-8")
    assert_one_line_error(run("train", "--data", nocol, "--out", tmp_path / "m"), "missing column")
    assert_one_line_error(run("train", "--data", tmp_path / "none.csv", "--out", tmp_path / "m"), "not found")
    assert not (tmp_path / "m").exists()


def test_taxonomy_commands(data_dir):
    checked = run("taxonomy", "check")
    assert checked.returncode == 0 and json.loads(checked.stdout)["units"]["street"] == 349
    places = run("taxonomy", "places", "海淀区八里庄街道的路灯坏了")
    assert json.loads(places.stdout)["street"] == "八里庄街道"
    assert_one_line_error(run("taxonomy", "check", "--profile", "atlantis"), "no such profile")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "jiesu"
    assert script.exists()
    assert subprocess.run([script, "--help"], capture_output=True, timeout=60).returncode == 0


def test_hotspots_on_the_real_votes_file(data_dir):
    result = run("analytics", "hotspots", "--data", data_dir / "tipdm2020c" / "appeals_with_votes.csv", "--top", "5")
    assert result.returncode == 0, result.stderr
    hotspots = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hotspots) == 5 and hotspots[0]["size"] >= hotspots[-1]["size"] >= 3
    assert any("搅拌" in "".join(h["key_phrases"]) for h in hotspots)  # the 丽发新城 batching plant
    assert "4326 appeals" in result.stderr
    missing = run("analytics", "hotspots", "--data", data_dir / "nothing.csv")
    assert_one_line_error(missing, "not found")


def test_encoder_import_through_jiesu_refuses_a_missing_file(tmp_path):
    result = run("encoder", "import-e5", "--bin", tmp_path / "nothing.bin", "--out", tmp_path / "enc")
    assert_one_line_error(result, "nothing.bin")


def test_serving_never_loads_training_or_torch():
    code = ("import sys, serving.cli, serving.api.app, serving.model.predictor; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('training', 'torch', 'transformers')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
