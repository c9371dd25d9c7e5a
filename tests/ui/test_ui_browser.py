"""The registry web UI in a real headless chromium: every page shows what the registry records.

Each test reads the expected values from the registry itself (``forkpoint ... --json`` or the
Python API) and compares them with what the browser renders, so a page that drifted from
the registry, a broken plot or a missing escape fails here.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from forkpoint.registry import Registry
from forkpoint.workflows.render import branch_label, pct

pytestmark = pytest.mark.browser

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rows(driver, table_id: str):
    return driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")


def click_and_load(driver, element) -> None:
    """Click a link or submit button and wait until the next page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 30).until(lambda d: _detached(old))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _detached(element) -> bool:
    """Whether ``element`` has left the document. chromedriver reports a node of a page being
    replaced either as stale or, mid-navigation, as "does not belong to the document"."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def image_loaded(driver, element) -> bool:
    driver.execute_script("return arguments[0].scrollIntoView()", element)
    for _ in range(300):  # plots are drawn on first request: up to 30 s
        if driver.execute_script("return arguments[0].complete", element):
            break
        time.sleep(0.1)
    return bool(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element))


def http_get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def test_tasks_page_shows_live_version_branch_and_accuracy(driver, ui_url, built, shot_dir):
    listed = built.json("tasks")["tasks"]
    driver.get(ui_url + "/")
    shown = {r.get_attribute("data-task"): r for r in rows(driver, "tasks")}
    assert sorted(shown) == sorted(t["name"] for t in listed)
    reg = Registry.open(built.home)
    try:
        for t in listed:
            cells = [c.text for c in shown[t["name"]].find_elements(By.TAG_NAME, "td")]
            live = reg.show(t["name"])
            assert cells[1] == f"v{t['live_version']}"
            assert cells[2] == str(t["num_versions"])
            assert cells[4] == branch_label(live)
            assert cells[5:8] == [pct(t["val_acc"]), pct(t["test_acc"]), f"{t['extra_cost_pct']:.1f}%"]
    finally:
        reg.close()
    assert shown["mnist"].find_element(By.CSS_SELECTOR, "td.branch").text == "linear probe"
    driver.save_screenshot(str(shot_dir / "tasks.png"))
    click_and_load(driver, shown["digits"].find_element(By.TAG_NAME, "a"))
    assert driver.find_element(By.TAG_NAME, "h1").text == "Task digits"


def test_task_page_history_diff_and_profile_plot(driver, ui_url, built, shot_dir):
    history = built.json("history", "digits")
    driver.get(ui_url + "/ui/tasks/digits")
    live = history["task"]["live_version"]
    assert driver.find_element(By.ID, "live-version").text == f"v{live}"
    versions = rows(driver, "versions")
    assert [r.get_attribute("data-version") for r in versions] == [str(v["version"]) for v in reversed(history["versions"])]
    states = {r.get_attribute("data-version"): r.find_element(By.CSS_SELECTOR, "td.state").text for r in versions}
    assert states == {str(v["version"]): v["state"] for v in history["versions"]}
    # the diff v1 -> v2 names exactly the fields `forkpoint diff` names
    changed = set(built.json("diff", "digits", "1", "2")["changes"])
    fields = {r.get_attribute("data-field") for r in driver.find_elements(By.CSS_SELECTOR, "table.diff tbody tr")}
    assert fields == changed and "branch.start" in fields
    # v2 was profiled: its plot is on the page and is a real PNG
    plot = driver.find_element(By.ID, "profile-plot")
    assert plot.get_attribute("data-version") == "2" and image_loaded(driver, plot)
    status, ctype, body = http_get(plot.get_attribute("src"))
    assert status == 200 and ctype == "image/png" and body.startswith(PNG_MAGIC)
    driver.save_screenshot(str(shot_dir / "task.png"))
    # the diff form (a GET form: no JavaScript) compares any two versions, either way round
    Select(driver.find_element(By.NAME, "v1")).select_by_value("2")
    Select(driver.find_element(By.NAME, "v2")).select_by_value("1")
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button"))
    assert driver.current_url.endswith("/ui/tasks/digits/diff?v1=2&v2=1")
    start = driver.find_element(By.CSS_SELECTOR, "#diff tr[data-field='branch.start']")
    v1, v2 = (v for v in history["versions"])
    assert start.find_element(By.CSS_SELECTOR, "td.old").text == str(v2["branch"]["start"])
    assert start.find_element(By.CSS_SELECTOR, "td.new").text == str(v1["branch"]["start"])


def test_markup_in_a_description_is_shown_as_text(driver, ui_url):
    driver.get(ui_url + "/ui/tasks/digits")
    cell = driver.find_element(By.CSS_SELECTOR, "#versions tr[data-version='2'] td:last-child")
    assert cell.text == "second <b>try</b> & more"
    assert cell.find_elements(By.TAG_NAME, "b") == []


def test_rollback_shows_in_history_and_on_the_tasks_page(driver, own_home, shots):
    own_home.cli("rollback", "digits", "--to", "1")
    with shots.serve(shots.ui_app(own_home.home, own_home.reports)) as url:
        driver.get(url + "/ui/tasks/digits")
        assert driver.find_element(By.ID, "live-version").text == "v1"
        first = rows(driver, "moves")[0]
        assert first.get_attribute("data-action") == "rollback"
        assert [c.text for c in first.find_elements(By.TAG_NAME, "td")][1:5] == ["rollback", "v1", "v2", "v1"]
        live_rows = driver.find_elements(By.CSS_SELECTOR, "#versions tr.is-live")
        assert [r.get_attribute("data-version") for r in live_rows] == ["1"]
        # v1 is a fixed branch: the page says so and shows the newest profiled version's plot instead
        assert "fixed branch" in driver.find_element(By.ID, "no-profile").text
        assert driver.find_element(By.ID, "profile-plot").get_attribute("data-version") == "2"
        driver.get(url + "/")
        assert driver.find_element(By.CSS_SELECTOR, "#tasks tr[data-task='digits'] td.live").text == "v1"


def test_audit_log_filters(driver, ui_url, built, shot_dir):
    events = built.json("events")
    events = events["events"] if isinstance(events, dict) else events
    driver.get(ui_url + "/ui/events")
    shown = rows(driver, "events")
    assert [int(r.find_element(By.TAG_NAME, "td").text) for r in shown] == sorted((e["id"] for e in events), reverse=True)
    driver.save_screenshot(str(shot_dir / "audit.png"))
    Select(driver.find_element(By.NAME, "task")).select_by_value("digits")
    Select(driver.find_element(By.NAME, "action")).select_by_value("add_version")
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#filters button"))
    filtered = rows(driver, "events")
    want = [e for e in events if e["task"] == "digits" and e["action"] == "add_version"]
    assert len(filtered) == len(want) == 2
    assert {r.get_attribute("data-action") for r in filtered} == {"add_version"}
    # a date after every event leaves nothing; a malformed one is named, not a server error
    driver.get(ui_url + "/ui/events?since=2999-01-01")
    assert rows(driver, "events") == []
    driver.get(ui_url + "/ui/events?since=yesterday")
    assert "YYYY-MM-DD" in driver.find_element(By.ID, "error").text


def test_stream_report_with_heatmap(driver, ui_url, built, shot_dir):
    run = built.run
    report = json.loads((built.reports / run / "report.json").read_text())
    driver.get(ui_url + "/ui/reports")
    run_row = driver.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{run}']")
    assert report["run_id"] and run_row.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text == report["status"]
    click_and_load(driver, run_row.find_element(By.TAG_NAME, "a"))
    assert report["run_id"] in driver.find_element(By.TAG_NAME, "h1").text
    for result in report["results"]:
        section = driver.find_element(By.ID, f"strategy-{result['strategy']}")
        heatmap = section.find_element(By.CSS_SELECTOR, "img.heatmap")
        assert image_loaded(driver, heatmap)
        cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                 for tr in section.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr")]
        assert cells == [["–" if v is None else f"{v:.3f}" for v in row] for row in result["acc_matrix"]]
    driver.save_screenshot(str(shot_dir / "report.png"))


def test_unknown_task_is_a_one_line_404(driver, ui_url):
    status, ctype, body = http_get(ui_url + "/ui/tasks/nosuchtask")
    assert status == 404 and ctype.startswith("text/html")
    driver.get(ui_url + "/ui/tasks/nosuchtask")
    message = driver.find_element(By.ID, "error").text
    assert "nosuchtask" in message and "\n" not in message
    assert http_get(ui_url + "/ui/reports/nosuchrun")[0] == 404
    assert http_get(ui_url + "/ui/tasks/digits/versions/99")[0] == 404


def test_screenshots_for_the_docs(driver, ui_url, built, shot_dir, shots):
    """The code that regenerates docs/img/ui-*.png, run on this home: four full pages, real PNGs."""
    written = shots.capture(ui_url, shot_dir / "docs", "digits", built.run, driver=driver)
    assert sorted(written) == sorted(shots.SHOTS)
    for path in written.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000, path
