"""The playground on the real broker and Redis (a worker, the simulated shop, the first model
trained in the background, the dashboard), its dashboard's JSON, and the page itself in
Debian's headless Chromium: charts drawn with data, the model timeline, the user lookup with
explanations. Screenshots go to build/screenshots/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import free_port, sync_redis, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHARTS = (
    "chart-rates",
    "chart-ctr",
    "chart-conversion",
    "chart-coverage",
    "chart-diversity",
    "chart-latency",
    "chart-histogram",
    "chart-lag",
)


@dataclass
class Running:
    url: str  # the dashboard
    worker_url: str
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:  # not listening yet
            return 0, {}

    def tail(self, n: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture
def playground(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Running]:
    name, web_port, port = f"pg-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    env = {
        **os.environ,
        "RECSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RECSTREAM_REDIS_URL": redis_url,
        "RECSTREAM_WEB_PORT": str(web_port),
        "RECSTREAM_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    argv = [str(Path(sys.executable).with_name("recstream")), "playground", "--name", name]
    argv += ["--users", "150", "--round-every", "1"]
    argv += ["--retrain-minutes", "30", "--port", str(port)]
    log = tmp_path / "playground.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    running = Running(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}", name, proc, log)
    yield running
    os.killpg(proc.pid, signal.SIGINT)  # the playground and its worker
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    worker_log = tmp_path / "artifacts" / name / "worker.log"
    sys.stderr.write(f"--- playground (tail) ---\n{running.tail()}\n")
    if worker_log.exists():
        sys.stderr.write(f"--- worker (tail) ---\n{worker_log.read_text()[-3000:]}\n")


def serving_model(running: Running, steps: int) -> bool:
    """v1 has made lists for ``steps`` of the charts' time steps (so that the screenshot,
    the README's, shows lines rather than dots)."""
    status, body = running.get("/api/series?minutes=5")
    lists = (body.get("versions", {}).get("v1") or {}).get("lists_per_s", [])
    return status == 200 and sum(1 for rate in lists if rate) >= steps


def a_user(redis_url: str, name: str) -> str:
    client = sync_redis(redis_url)
    for key in client.scan_iter(match=f"{name}:user:*", count=1000):
        return key.decode().split("{", 1)[1].rstrip("}")
    raise AssertionError(f"no user under {name}:user:*")


def test_playground_serves_a_model_and_its_dashboard_shows_it(
    playground: Running, redis_url: str
) -> None:
    assert wait_until(lambda: serving_model(playground, 12), 300, 1.0), playground.tail()

    status, models = playground.get("/api/models")
    kinds = {(e["kind"], e["version"]) for e in models["events"]}
    assert {("trained", "v1"), ("announced", "v1"), ("serving", "v1")} <= kinds, models

    status, body = playground.get("/api/series?minutes=5")
    assert status == 200
    assert any(body["events"]["valid"]), "events per second"
    assert sum(body["histogram"]["counts"]["v1"]) > 0
    assert [w["version"] for w in body["workers"].values()] == ["v1"]
    assert playground.get("/api/series?minutes=0")[0] == 400

    user = a_user(redis_url, playground.name)

    def explained() -> bool:  # the user's list made by v1, each item with its reasons
        status, found = playground.get(f"/api/users/{user}")
        recs = found.get("recommendations", {})
        return status == 200 and recs.get("model_version") == "v1"

    assert wait_until(explained, 60, 1.0)
    status, found = playground.get(f"/api/users/{user}")
    assert found["user"]["events"] > 0 and found["user"]["recent"]
    items = found["recommendations"]["items"]
    assert items and any(entry["because"] for entry in items)
    assert all(r in found["user"]["recent"] for e in items for r in e["because"])
    assert found["items"][items[0]["item_id"]]["title"], "titles from the catalogue"
    assert playground.get("/api/users/%20")[0] == 400

    page_shows_it(playground, user)


def page_shows_it(running: Running, user: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, (
        "Debian's chromium and chromium-driver are needed (scripts/test installs them)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        browser.get(running.url + "/")

        def charts_drawn() -> bool:
            found = browser.execute_script(
                "return [...document.querySelectorAll('figure.chart')].map("
                "f => [f.id, Number(f.dataset.points || 0), f.querySelectorAll('canvas').length])"
            )
            drawn = {cid: points > 0 and canvases > 0 for cid, points, canvases in found}
            return all(drawn.get(cid) for cid in CHARTS)

        assert wait_until(charts_drawn, 60, 1.0), browser.page_source[:2000]
        timeline = browser.find_element(By.CSS_SELECTOR, "#models tbody").text
        assert "serving" in timeline and "v1" in timeline
        tiles = browser.find_element(By.ID, "tiles").text
        assert "CTR" in tiles and "v1" in tiles
        browser.save_screenshot(str(SCREENSHOTS / "dashboard.png"))

        browser.find_element(By.ID, "user-id").send_keys(user)
        browser.find_element(By.CSS_SELECTOR, "#lookup button").click()

        def listed() -> bool:
            rows = browser.find_elements(By.CSS_SELECTOR, "#user-list tbody tr")
            return bool(rows) and any(r.text.strip() and "–" not in r.text[-2:] for r in rows)

        assert wait_until(listed, 30, 0.5), browser.find_element(By.ID, "user").text
        assert user in browser.find_element(By.ID, "user").text
        browser.execute_script("document.getElementById('lookup').scrollIntoView()")
        browser.save_screenshot(str(SCREENSHOTS / "dashboard-user.png"))
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        browser.quit()
