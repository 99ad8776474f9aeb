"""The household page in a real browser: Debian's headless Chromium driven by Playwright, against a real
`interceptor serve` whose journal was filled by real scale conversations, with a real InfluxDB behind it.

Screenshots of every page at phone and desktop width are saved as test artifacts, in $ARTIFACTS when
set, else in a temporary directory; the path is printed (pytest -s shows it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import NO_RATE_LIMIT, Influx, Served, start_server, wait_until
from tests.web.support import WEB_HOUSEHOLD_TOML, fill

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
PAGE_WEIGHT_LIMIT = 100_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium for these tests, with a fresh profile (Playwright makes a temporary user-data-dir).
    Module-scoped, not session-scoped: Playwright's synchronous API keeps an event loop running in the
    test thread while it is open, which every later test's `asyncio.run` would trip over."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run ./scripts/setup.sh --test (scripts/debian-test-packages.txt)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ["ARTIFACTS"]) / "web" if os.environ.get("ARTIFACTS") else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the household page: {folder}")
    return folder


@pytest.fixture(scope="module")
def household(tmp_path_factory: pytest.TempPathFactory, influxd: Influx) -> Iterator[tuple[Served, str]]:
    root = tmp_path_factory.mktemp("web-browser")
    database = f"scales_web_{os.getpid()}"
    config = root / "interceptor.toml"
    config.write_text(WEB_HOUSEHOLD_TOML + f'\n[influx]\nurl = "{influxd.url}"\ndatabase = "{database}"\n')
    served = start_server(config, root / "data", env=NO_RATE_LIMIT)  # fill: 45 weigh-ins
    fill(served)
    yield served, database
    served.kill()


def body_points(influxd: Influx, database: str) -> list[tuple[int, str, float]]:
    result = influxd.query('SELECT "weight_kg", "user" FROM "body"', database)["results"][0]
    return [(row[0], row[2], row[1]) for row in result.get("series", [{"values": []}])[0]["values"]]


def open_page(browser, viewport: dict, scheme: str = "light"):
    context = browser.new_context(viewport=viewport, color_scheme=scheme, java_script_enabled=False)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    return context, page, problems


def test_what_a_person_reads_and_a_claim_from_the_page(browser, household, artifacts: Path, influxd: Influx) -> None:
    served, database = household
    base = served.web_url
    context, page, problems = open_page(browser, PHONE)
    try:
        weights: list[int] = []
        page.on("response", lambda response: weights.append(len(response.body()))
                if response.request.resource_type in ("document", "stylesheet") else None)
        page.goto(base + "/")
        cards = page.locator("a.card")
        assert cards.count() == 2
        fred, franziska = cards.nth(0), cards.nth(1)
        assert fred.locator("h2").inner_text() == "Fred" and fred.locator(".weight").inner_text().endswith(" kg")
        assert franziska.locator(".weight").inner_text() == "9 st 1.8 lb"
        assert franziska.locator(".goal").inner_text() == "goal 8 st 9.3 lb: 6.5 lb to go"
        assert "2 weigh-ins wait for a person" in page.locator(".banner").inner_text()
        assert sum(weights) < PAGE_WEIGHT_LIMIT, f"home page weighs {sum(weights)} bytes"
        page.screenshot(path=artifacts / "home-phone.png", full_page=True)

        franziska.click()
        page.wait_for_url("**/people/fra")
        assert page.locator("h1").inner_text() == "Franziska"
        assert page.locator("svg.chart line.goal").count() == 1
        assert page.locator("tbody tr").count() == 3
        assert page.locator("tbody tr").first.locator("td").nth(1).inner_text() == "9 st 1.8 lb"
        page.get_by_role("link", name="1 year").click()
        page.locator("label", has_text="body fat").locator("input").check()
        page.get_by_role("button", name="Show").click()
        assert "range=1y" in page.url and "show=fat" in page.url
        assert page.locator("svg.chart").count() == 2
        page.screenshot(path=artifacts / "person-phone.png", full_page=True)

        page.goto(base + "/unclaimed")
        guest = page.locator("article.waiting", has_text="31.2 kg")
        assert [b.inner_text().split("\n")[0] for b in guest.locator("button").all()] == [
            "This was Franziska", "This was Fred", "Not a household member"]  # nearest recent weight first
        page.screenshot(path=artifacts / "unclaimed-phone.png", full_page=True)
        guest.get_by_role("button", name="This was Franziska").click()
        page.wait_for_url("**/unclaimed?claimed=*")
        assert "is now filed under Franziska." in page.locator(".notice").inner_text()
        assert page.locator("article.waiting", has_text="31.2 kg").count() == 0
        page.screenshot(path=artifacts / "claimed-phone.png", full_page=True)
        assert problems == []
    finally:
        context.close()

    listed = json.loads(served.cli("measurements", "list", "--format", "json", "--user", "fra").stdout)
    (claimed,) = [item for item in listed if item["readings"]["weight_kg"] == 31.2]
    assert claimed["assigned_by"] == "manual" and claimed["metrics"]["bmi"]["value"] > 0
    meastime = int(datetime.fromisoformat(claimed["taken_at"].replace("Z", "+00:00")).timestamp())
    wait_until(lambda: [(user, weight) for at, user, weight in body_points(influxd, database) if at == meastime]
               == [("fra", 31.2)], timeout=20, what="the InfluxDB point moved to fra")


def test_every_page_at_phone_and_desktop_width_light_and_dark(browser, household, artifacts: Path) -> None:
    served, _ = household
    for name, viewport, scheme in (("phone", PHONE, "dark"), ("desktop", DESKTOP, "light"),
                                   ("desktop", DESKTOP, "dark")):
        context, page, problems = open_page(browser, viewport, scheme)
        try:
            for path, title in (("/", "Home"), ("/people/fed?range=3m", "Fred"), ("/unclaimed", "Who was it?"),
                                ("/devices", "Devices"), ("/health", "Health")):
                page.goto(served.web_url + path)
                assert page.title() == f"{title} · Scales"
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"{path} scrolls sideways at {viewport['width']} px"
                slug = path.strip("/").split("?")[0].replace("/", "-") or "home"
                page.screenshot(path=artifacts / f"{slug}-{name}-{scheme}.png", full_page=True)
            assert "WS-50" in page.goto(served.web_url + "/devices").text()
            assert "69 %" in page.locator(".device").inner_text()
            assert problems == []
        finally:
            context.close()
