"""The service on a transformer bundle and on an ensemble: intake classifies through onnxruntime, a
random tiny model's low confidence sends the appeal to review instead of a guessed unit, and the
running service switches between bundle kinds with a reload."""

from __future__ import annotations

import pytest

from tests.api.conftest import ADMIN_KEY, Server, client

pytest.importorskip("torch")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, taxonomy):
    from tests.tiny_encoder import train_tiny_bundle

    root = tmp_path_factory.mktemp("router")
    transformer, _ = train_tiny_bundle(root, taxonomy, "transformer")
    ensemble, _ = train_tiny_bundle(root, taxonomy, "ensemble", encoder=root / "encoder")
    return {"transformer": transformer, "ensemble": ensemble}


@pytest.fixture(scope="module")
def base_url(bundles, tmp_path_factory, data_dir):
    from serving.api.app import create_app
    from serving.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'jiesu.db'}",
                        model_path=bundles["transformer"], bootstrap_admin_key=ADMIN_KEY, data_dir=data_dir)
    with Server(create_app(settings)) as url:
        yield url


def test_intake_classifies_with_the_transformer_bundle(base_url, bundles):
    with client(base_url) as admin:
        current = admin.get("/v1/models/current").json()
        assert current["kind"] == "transformer" and len(current["labels"]) == 15
        response = admin.post("/v1/appeals", json={
            "title": "燃气泄漏", "channel": "phone",
            "text": "朝阳区建外街道永安里小区3号楼楼道里燃气泄漏，味道很大，请马上派人来！"})
        assert response.status_code == 201, response.text
        body = response.json()
        classification = body["classification"]
        assert classification["category"]["label"] in current["labels"]
        assert classification["urgency"] == 1 and "燃气泄漏" in classification["urgency_reason"]
        assert classification["street"] == "建外街道"
        # an untrained tiny model is unsure of the category: the appeal waits for a reviewer
        assert body["status"] == "review"


def test_reload_switches_to_the_ensemble_and_back(base_url, bundles):
    with client(base_url) as admin:
        reloaded = admin.post("/v1/models/reload", json={"path": str(bundles["ensemble"])})
        assert reloaded.status_code == 200, reloaded.text
        assert admin.get("/v1/models/current").json()["kind"] == "ensemble"
        response = admin.post("/v1/appeals", json={"text": "海淀区学院路街道某小区夜间施工噪音扰民，请处理。"})
        assert response.status_code == 201, response.text
        assert response.json()["classification"]["district"] == "海淀区"
        back = admin.post("/v1/models/reload", json={"path": str(bundles["transformer"])})
        assert back.status_code == 200 and admin.get("/v1/models/current").json()["kind"] == "transformer"
