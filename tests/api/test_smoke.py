"""Intake over real HTTP: classify, dispatch, commit, answer."""

from __future__ import annotations

from tests.api.conftest import client


def test_intake_dispatches_a_heating_complaint_to_the_street_and_the_department(admin, make_key, base_url):
    with client(base_url, make_key("intake")) as intake:
        response = intake.post("/v1/appeals", json={
            "title": "暖气不热", "channel": "phone",
            "text": "市民来电反映：朝阳区建外街道永安里小区3号楼暖气一直不热，室温只有14度，家里有老人。"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "dispatched"
    assert body["classification"]["urgency"] == 2
    assert body["classification"]["street"] == "建外街道"
    assert body["dispatch"]["mode"] == "joint"
    assert body["dispatch"]["primary_unit"]["name"] == "建外街道"
    ticket = admin.get(f"/v1/tickets/{body['ticket_id']}").json()
    assert [e["kind"] for e in ticket["events"]][:3] == ["received", "classified", "dispatched"]
