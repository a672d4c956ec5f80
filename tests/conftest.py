"""Shared fixtures: the Beijing taxonomy (loaded once), the shared data directory, the team's sample."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "samples" / "beijing_appeals.jsonl"


def shared_data_dir() -> Path:
    return Path(os.environ.get("JIESU_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "admin" / "beijing_streets.csv").exists():
        pytest.fail(f"shared data not found at {path}: set JIESU_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def taxonomy(data_dir):
    from taxonomy import load_taxonomy

    return load_taxonomy(data_dir=data_dir)


@pytest.fixture(scope="session")
def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory, taxonomy):
    """A linear bundle trained on the team's sample set (a few seconds)."""
    from training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("models") / "sample"
    train(TrainConfig(data=[SAMPLE], out=out), taxonomy, log=lambda m: None)
    return out
