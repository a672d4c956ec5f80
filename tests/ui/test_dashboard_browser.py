"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright signs in, opens
the review queue, reassigns a ticket — the category picked from the whole tree, the units by name — and
sees it leave the queue."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

from tests.api.conftest import ADMIN_KEY, Server, client

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, sample_model, data_dir):
    from serving.api.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('ui') / 'jiesu.db'}",
                              model_path=sample_model, bootstrap_admin_key=ADMIN_KEY, data_dir=data_dir))
    with Server(app) as url:
        yield url, app


def test_reviewer_reassigns_a_ticket_from_the_queue(dashboard, taxonomy):
    from serving.services.keys import create_key

    assert CHROMIUM, "Debian's chromium is needed for the browser test (scripts/setup installs it)"
    url, app = dashboard
    with app.state.jiesu.sessions() as session:
        reviewer_key = create_key(session, "reviewer")
    with client(url) as admin:  # no place named: the ticket waits for a reviewer
        ticket = admin.post("/v1/appeals", json={"text": "小区楼下的垃圾已经一个星期没人清运了，臭气熏天。"}).json()
    assert ticket["status"] == "review"
    tid = ticket["ticket_id"]
    street = next(u for u in taxonomy.units.of_kind("street") if u.name == "望京街道").id

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(f"{url}/ui/queue")
        assert "/ui/login" in page.url  # not signed in yet
        page.fill("#key", "wrong-key")
        page.click("#signin")
        assert "密钥无效" in page.inner_text("#error")
        page.fill("#key", reviewer_key)
        page.click("#signin")
        page.wait_for_url(f"{url}/ui/queue")
        row = page.locator(f"#ticket-{tid}")
        assert row.count() == 1 and "垃圾" in row.inner_text()
        assert "无法确定地点" in row.locator(".reasons").inner_text()
        options = page.eval_on_selector_all("#categories option", "els => els.map(e => e.value)")
        assert "城乡建设" in options and "城乡建设/环境卫生/垃圾清运与道路保洁" in options  # every level
        assert "望京街道（朝阳区）" in page.eval_on_selector_all("#units option", "els => els.map(e => e.value)")
        row.locator("input[name=category]").fill("城乡建设/环境卫生/垃圾清运与道路保洁")
        row.locator("select[name=urgency]").select_option("3")
        row.locator("input[name=primary_unit]").fill("望京街道（朝阳区）")
        row.locator("input[name=department_unit]").fill("朝阳区城市管理委员会")
        row.locator("input[name=company_unit]").fill("")
        row.locator("button").click()
        page.wait_for_selector("#flash")
        assert f"工单 {tid} 已派给 望京街道（朝阳区）" in page.inner_text("#flash")
        assert page.locator(f"#ticket-{tid}").count() == 0  # it left the queue
        page.goto(f"{url}/ui/tickets/{tid}")
        timeline = page.inner_text("#timeline")
        assert "改派" in timeline and "垃圾清运与道路保洁" in timeline and "\\u" not in timeline  # readable Chinese
        page.goto(f"{url}/ui/rankings")
        assert page.locator("#rankings").count() == 1
        page.goto(f"{url}/ui/hotspots")
        assert page.locator("#hotspots").count() == 1 and page.locator("#alerts").count() == 1
        browser.close()
    with client(url) as admin:
        after = admin.get(f"/v1/tickets/{tid}").json()
    assert after["status"] == "dispatched" and after["dispatch"]["primary_unit"]["id"] == street
    assert after["classification"]["category"]["label"] == "城乡建设/环境卫生/垃圾清运与道路保洁"
    assigned = [e for e in after["events"] if e["kind"] == "assigned"][-1]
    assert assigned["payload"]["department"] == "management" and assigned["payload"]["corrected"] is True


def test_a_unit_name_that_is_not_in_the_registry_is_refused(dashboard):
    import httpx

    url, _ = dashboard
    with client(url) as admin:
        tid = admin.post("/v1/appeals", json={"text": "楼下垃圾桶满了没人管。"}).json()["ticket_id"]
    with httpx.Client(base_url=url, follow_redirects=False) as browser:
        browser.post("/ui/login", content=f"key={ADMIN_KEY}", headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = browser.post(f"/ui/tickets/{tid}/assign", content="primary_unit=%E4%B8%8D%E5%AD%98%E5%9C%A8%E8%A1%97%E9%81%93&category=%E5%9F%8E%E4%B9%A1%E5%BB%BA%E8%AE%BE",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 303 and "error=" in answer.headers["location"]


def test_citizen_text_is_escaped_in_the_dashboard(dashboard):
    url, _ = dashboard
    with client(url) as admin:
        admin.post("/v1/appeals", json={"text": "<script>alert('x')</script>小区垃圾没人清运"})
    import httpx

    with httpx.Client(base_url=url, follow_redirects=False) as browser:
        assert browser.post("/ui/login", content=f"key={ADMIN_KEY}",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 303
        page = browser.get("/ui/queue").text
    assert "&lt;script&gt;" in page and "<script>alert" not in page
