"""The unit registry is the truth at run time: a street imported over HTTP is resolved and dispatched to
at once, a renamed one answers to both names, a merged one sends its appeals to its successor — no
restart, no code change."""

from __future__ import annotations

from tests.api.conftest import client


def appeal(admin, text: str) -> dict:
    response = admin.post("/v1/appeals", json={"text": text})
    assert response.status_code == 201, response.text
    return response.json()


def test_an_imported_street_is_resolved_and_dispatched_to_without_a_restart(admin):
    new = {"code": "110105099", "name": "望湖新城街道", "district_code": "110105"}
    before = appeal(admin, "朝阳区望湖新城街道湖畔家园小区路灯不亮，晚上很黑。")
    assert before["classification"]["street"] is None
    answer = admin.post("/v1/units/import", json={"streets": [new]})
    assert answer.status_code == 200 and answer.json()["added"] == 1
    after = appeal(admin, "朝阳区望湖新城街道湖畔家园小区路灯不亮，晚上很黑。")
    assert after["classification"]["street"] == "望湖新城街道"
    if after["dispatch"]["primary_unit"]:
        assert after["dispatch"]["primary_unit"] == {"id": "street:110105099", "name": "望湖新城街道", "kind": "street"}
    renamed = admin.post("/v1/units/import", json={"streets": [{**new, "name": "望湖街道"}]}).json()
    assert renamed["renamed"] == 1
    units = {u["id"]: u for u in admin.get("/v1/units", params={"kind": "street", "district_code": "110105"}).json()}
    assert units["street:110105099"]["name"] == "望湖街道"
    assert units["street:110105099"]["history"][-1] == {**units["street:110105099"]["history"][-1],
                                                         "kind": "renamed", "from": "望湖新城街道", "to": "望湖街道"}
    old_name = appeal(admin, "朝阳区望湖新城街道湖畔家园垃圾没人清运。")
    assert old_name["classification"]["street"] == "望湖街道"  # the former name still resolves


def test_a_merged_unit_sends_its_appeals_to_its_successor(admin, taxonomy):
    admin.post("/v1/units/import", json={"streets": [{"code": "110105098", "name": "青年湖东街道",
                                                     "district_code": "110105"}]})
    survivor = next(u for u in taxonomy.units.of_kind("street") if u.name == "建外街道")
    merged = admin.post("/v1/units/street:110105098/merge", json={"into": survivor.id})
    assert merged.status_code == 200 and merged.json()["history"][-1]["from"] == "street:110105098"
    routed = appeal(admin, "朝阳区青年湖东街道某小区楼道灯坏了。")
    assert routed["classification"]["street"] == "建外街道"
    assert admin.post("/v1/units/street:110105098/merge", json={"into": survivor.id}).status_code == 422
    assert admin.post("/v1/units/street:404/merge", json={"into": survivor.id}).status_code == 404


def test_only_an_admin_changes_the_registry(base_url, make_key):
    with client(base_url, make_key("reviewer")) as reviewer:
        assert reviewer.post("/v1/units/import", json={"streets": [
            {"code": "110105097", "name": "某街道", "district_code": "110105"}]}).status_code == 403
    with client(base_url) as admin:
        bad = admin.post("/v1/units/import", json={"streets": [{"code": "110199001", "name": "某街道",
                                                                "district_code": "110199"}]})
    assert bad.status_code == 422 and "district_code" in bad.json()["detail"]["field"]
