"""Open311 GeoReport v2 over HTTP, following the spec's examples: the services are the tree's leaves, a
form-encoded request with ``api_key`` becomes a ticket (the citizen's service decides the category, or
the router without one), requests are listed by id, service, dates and status, with the spec's field
names and error list; what a request shows is masked, with no caller data."""

from __future__ import annotations

from tests.api.conftest import ADMIN_KEY, client

def test_the_services_are_the_trees_leaves_with_the_specs_fields(base_url, taxonomy):
    with client(base_url, None) as c:  # the catalogue needs no key
        services = c.get("/open311/v2/services.json").json()
        leaves = [n for n in taxonomy.categories.walk() if not n.children and n.level >= 2]
        assert len(services) == len(leaves) and len({s["service_code"] for s in services}) == len(services)
        first = services[0]
        assert set(first) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
        assert first["metadata"] is False and first["type"] == "batch" and first["group"] in taxonomy.categories.top_level_names
        code = first["service_code"]
        assert c.get(f"/open311/v2/services/{code}.json").json() == {"service_code": code, "attributes": []}
        missing = c.get("/open311/v2/services/nope.json")
        assert missing.status_code == 404 and missing.json()[0]["code"] == 404 and "description" in missing.json()[0]


def test_a_form_request_with_a_service_becomes_a_ticket_of_that_category(base_url, make_key, taxonomy):
    key = make_key("intake")
    node = next(n for n in taxonomy.categories.walk() if not n.children and n.owner and n.path[0] == "城乡建设"
                and "路灯" in n.name)
    with client(base_url, None) as c:
        code = next(s["service_code"] for s in c.get("/open311/v2/services.json").json()
                    if s["service_name"] == node.name and s["group"] == node.path[0])
        created = c.post("/open311/v2/requests.json", data={
            "api_key": key, "service_code": code, "description": "朝阳区望京街道阜通东大街的路灯一到晚上就不亮，我电话13912345678。",
            "address_string": "朝阳区望京街道阜通东大街", "first_name": "伟", "last_name": "王", "phone": "13912345678"})
        assert created.status_code == 201, created.text
        (answer,) = created.json()
        assert set(answer) == {"service_request_id", "service_notice", "account_id"}
        rid = answer["service_request_id"]
        (request,) = c.get(f"/open311/v2/requests/{rid}.json", params={"api_key": key}).json()
    assert request["service_code"] == code and request["service_name"] == node.name and request["status"] == "open"
    assert "13912345678" not in request["description"] and "139****5678" in request["description"]
    assert request["address"] == "朝阳区望京街道阜通东大街" and request["requested_datetime"].endswith("+00:00")
    assert not any(k in request for k in ("phone", "first_name", "caller"))
    with client(base_url) as admin:
        ticket = admin.get(f"/v1/tickets/{rid}").json()
    assert ticket["classification"]["category"]["label"] == node.label and ticket["channel"] == "open311"
    assert ticket["caller"]["phone"] == "13912345678"  # kept for the units, never shown through Open311


def test_without_a_service_the_router_decides_and_errors_are_the_specs_list(base_url, make_key):
    key = make_key("intake")
    with client(base_url, None) as c:
        routed = c.post("/open311/v2/requests.json", data={"api_key": key, "description": "海淀区中关村街道小区停水两天了。"})
        assert routed.status_code == 201, routed.text
        for data, code, words in [
            ({"description": "停水"}, 401, "api_key"),
            ({"api_key": "jsk_nobody", "description": "停水"}, 401, "api_key"),
            ({"api_key": key}, 400, "description"),
            ({"api_key": key, "description": "停水", "service_code": "c00000000"}, 400, "service_code"),
            ({"api_key": key, "description": "停水", "lat": "91", "long": "116.4"}, 400, "lat"),
            ({"api_key": key, "description": "停\x00水"}, 400, "description"),
        ]:
            response = c.post("/open311/v2/requests.json", data=data)
            assert response.status_code == code, (data, response.text)
            (error,) = response.json()
            assert error["code"] == code and words in error["description"], error
        analyst = make_key("analyst")
        refused = c.post("/open311/v2/requests.json", data={"api_key": analyst, "description": "停水"})
        assert refused.status_code == 403 and refused.json()[0]["code"] == 403


def test_requests_are_listed_by_id_service_dates_and_status(base_url, make_key):
    key = make_key("intake")
    with client(base_url, None) as c:
        ids = [c.post("/open311/v2/requests.json", data={"api_key": key, "description": f"西城区月坛街道垃圾桶满了没人清运{i}。"}
                      ).json()[0]["service_request_id"] for i in range(3)]
        both = c.get("/open311/v2/requests.json", params={"api_key": ADMIN_KEY, "service_request_id": ",".join(ids[:2])})
        assert sorted(r["service_request_id"] for r in both.json()) == sorted(ids[:2])
        mine = c.get("/open311/v2/requests.json", params={"api_key": key}).json()
        assert sorted(r["service_request_id"] for r in mine) == sorted(ids)  # intake: the requests it created
        other = c.get("/open311/v2/requests.json", params={"api_key": make_key("intake")}).json()
        assert other == []
        closed = c.get("/open311/v2/requests.json", params={"api_key": key, "status": "closed"}).json()
        assert closed == []
        future = c.get("/open311/v2/requests.json", params={"api_key": key, "start_date": "2099-01-01T00:00:00+08:00"})
        assert future.status_code == 200 and future.json() == []
        for params in ({"start_date": "yesterday"}, {"status": "done"}, {"service_request_id": "abc"}):
            bad = c.get("/open311/v2/requests.json", params={"api_key": key, **params})
            assert bad.status_code == 400 and bad.json()[0]["code"] == 400, params
        assert c.get("/open311/v2/requests/99999999999.json", params={"api_key": key}).status_code == 404
        assert c.get(f"/open311/v2/requests/{ids[0]}.json", params={"api_key": make_key("intake")}).status_code == 403
