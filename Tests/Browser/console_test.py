#!/usr/bin/env python3
"""The web console in a real browser (issue 17): Debian's Chromium driven by Selenium against a
running `baton serve` that the demo filled with real sagas, and a second one over the same database
that asks for credentials.

    scripts/console-test     (sets the variables below, after scripts/demo)

BATON_URL          the demo's server (no credentials, loopback)
CONSOLE_AUTH_URL   a server over the same database and NATS with two tokens:
READER_TOKEN       holds sagas:read only
OPERATOR_TOKEN     holds every scope
BATON_NATS_URL     the demo's NATS (a malformed reply is published to fill the dead letters)
SCREENSHOTS        where to write the screenshots docs/console.md shows
"""
import asyncio
import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["BATON_URL"].rstrip("/")
AUTH_BASE = os.environ["CONSOLE_AUTH_URL"].rstrip("/")
READER_TOKEN = os.environ["READER_TOKEN"]
OPERATOR_TOKEN = os.environ["OPERATOR_TOKEN"]
SHOTS = os.environ.get("SCREENSHOTS", ".baton/console-screenshots")
os.makedirs(SHOTS, exist_ok=True)
failures = []


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"), flush=True)
    if not condition:
        failures.append(name)


def api(method, path, body=None, content_type="application/json", base=BASE):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait_for_saga(saga_id, predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        saga = api("GET", f"/v1/sagas/{saga_id}")
        if predicate(saga):
            return saga
        time.sleep(0.2)
    raise AssertionError(f"saga {saga_id} did not get there: {saga['status']} at {saga.get('current_step')}")


def find_saga(search):
    """The demo's saga whose input holds this business id, by the console's own search."""
    sagas = [s for s in api("GET", "/v1/sagas?limit=500")["sagas"]]
    for saga in sagas:
        full = api("GET", f"/v1/sagas/{saga['id']}")
        if search in json.dumps(full["input"]):
            return full
    raise AssertionError(f"no demo saga holds {search}")


# A payout that tells the customer (the pivot), then waits for a reviewer's decision: a failed
# decision after the pivot suspends it for an operator.
REVIEW = """
name: console-review
version: 1
description: Tell the customer, then wait for a reviewer's decision (the console's browser test).
steps:
  - name: tell-customer
    participant: notifications
    action: send
    pivot: true
    payload:
      template: transfer-completed
      account: "{{input.account}}"
      amount: 100
      currency: EUR
      transfer_id: "{{input.review_id}}"
    timeout: 5s
  - name: review
    signal: review-decision
    timeout: 10m
"""


def start_review(review_id):
    saga = api("POST", "/v1/sagas", {"workflow": "console-review", "input": {"review_id": review_id, "account": "alice"}})
    return wait_for_saga(saga["id"], lambda s: s["current_step"] == "review" and s["status"] == "PROCESSING")["id"]


def browser(width=1280, height=800):
    options = webdriver.ChromeOptions()
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                     "--lang=en-GB", "--force-device-scale-factor=1"]:
        options.add_argument(argument)
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # Debian's driver, never one downloaded at run time.
    driver = webdriver.Chrome(options=options, service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")))
    driver.set_window_size(width, height)
    return driver


def shot(driver, name, show=None):
    """A screenshot for docs/console.md, scrolled to the element `show` selects when given."""
    if show:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", driver.find_element(By.CSS_SELECTOR, show))
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))
    driver.execute_script("window.scrollTo(0, 0)")


def text(driver, selector):
    """An element's text, read in one script: a live update may replace the element at any time, so
    a found element can be gone by the time it is read."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null", selector) or ""


def take_action(driver, action, reason):
    """Opens an action's form, types the reason, ticks the confirmation and submits, as a person
    would. A live update may replace the form meanwhile (the saga changed): then it starts again
    on the new one, as a person would."""
    for _ in range(5):
        try:
            form = driver.find_element(By.CSS_SELECTOR, f"#actions form input[name=action][value={action}]").find_element(By.XPATH, "..")
            driver.execute_script("arguments[0].closest('details').open = true", form)
            form.find_element(By.NAME, "reason").send_keys(reason)
            form.find_element(By.NAME, "confirm").click()
            follow(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"the {action} form kept changing")


def saga_status(driver):
    return driver.execute_script("const e = document.getElementById('saga-status'); return e ? e.dataset.status : null")


def wait(driver, seconds=15):
    return WebDriverWait(driver, seconds)


def landed(driver, fragment):
    """After a click or a key that navigates: the new page's address, and its document loaded."""
    wait(driver).until(EC.url_contains(fragment))
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def follow(driver, element, keys=None):
    """Clicks a link or button that navigates (or types `keys` that submit a form), and waits until
    the page it leaves is gone and the new one has loaded. The old page is marked, and the wait is
    for a document without the mark: element checks race the navigation (Chromium may answer that a
    node "does not belong to the document"), a script run in the new document does not."""
    driver.execute_script("window.consoleTestLeaving = true")
    if keys is None:
        element.click()
    else:
        element.send_keys(*keys)
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return window.consoleTestLeaving !== true && document.readyState === 'complete'"))


async def dead_letter():
    """A reply that is not JSON, as a broken participant would send: the orchestrator dead-letters it."""
    import nats
    nc = await nats.connect(os.environ["BATON_NATS_URL"])
    js = nc.jetstream()
    await js.publish("baton.reply.ledger.debit", b"this is not json", headers={"Baton-Protocol": "1", "Nats-Msg-Id": f"console-test-{time.time()}"})
    await nc.close()


def main():
    api("POST", "/v1/workflows", REVIEW.encode(), content_type="application/yaml")
    driver = browser()
    try:
        run(driver)
    finally:
        driver.quit()
    phone = browser(390, 844)
    try:
        run_phone(phone)
    finally:
        phone.quit()
    signed_in = browser()
    try:
        run_credentials(signed_in)
    finally:
        signed_in.quit()
    print(f"console: {len(failures)} failure(s)" if failures else "console: every check passed")
    sys.exit(1 if failures else 0)


def run(driver):
    # The overview: sagas by status, stuck counts, dead letters, participants.
    driver.get(BASE + "/ui")
    check("overview: title", driver.title.startswith("Overview"), driver.title)
    participants = text(driver, "#participant-rows")
    check("overview: lists the participants", "ledger" in participants and "notifications" in participants, participants)
    check("overview: in flight and stuck counts", "SUSPENDED" in text(driver, "#overview-cards") and "suspended" in text(driver, "#overview-cards"))
    shot(driver, "overview")

    # Filter the list with the form: failed transfers.
    driver.get(BASE + "/ui/sagas")
    Select(driver.find_element(By.ID, "workflow")).select_by_value("funds-transfer")
    Select(driver.find_element(By.ID, "status")).select_by_value("FAILED")
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    landed(driver, "status=FAILED")
    rows = driver.find_elements(By.CSS_SELECTOR, "#saga-rows tr")
    check("list: the filter keeps only failed transfers", len(rows) >= 2 and all("FAILED" in r.text and "funds-transfer" in r.text for r in rows),
          [r.text for r in rows])
    shot(driver, "sagas-filtered")

    # Search by a business id from the input, then open the saga.
    search = driver.find_element(By.ID, "q")
    search.clear()
    follow(driver, search, ["t-3", Keys.ENTER])
    landed(driver, "q=t-3")
    rows = driver.find_elements(By.CSS_SELECTOR, "#saga-rows tr")
    check("list: search by transfer_id finds one saga", len(rows) == 1, [r.text for r in rows])
    follow(driver, rows[0].find_element(By.CSS_SELECTOR, "a.mono"))
    status = saga_status(driver)
    check("saga: the refunded transfer failed", status == "FAILED", status)
    labels = driver.execute_script("return [...document.querySelectorAll('#timeline .bar')].map(bar => bar.getAttribute('aria-label'))")
    check("timeline: the debit's action succeeded", any(l.startswith("debit-sender: action attempt 1, succeeded") for l in labels), labels)
    check("timeline: the debit was compensated", any(l.startswith("debit-sender: undo attempt 1, compensated") for l in labels), labels)
    check("timeline: the fraud check failed", any(l.startswith("fraud-check: action") and "failed" in l for l in labels), labels)
    history = text(driver, "#history")
    check("history: shows the compensation", "step_compensated" in history and "saga_failed" in history)
    check("times: shown in local time with UTC on hover",
          driver.find_element(By.CSS_SELECTOR, "#summary time").get_attribute("title").endswith("(UTC)"))
    shot(driver, "saga-compensated", show="#timeline")

    # Onboarding: a parallel group and a child saga.
    driver.get(BASE + "/ui/sagas?q=ada%40example.com")
    follow(driver, driver.find_element(By.CSS_SELECTOR, "#saga-rows a.mono"))
    groups = [g.text for g in driver.find_elements(By.CSS_SELECTOR, "#timeline .group")]
    check("timeline: the parallel branches are labelled", any("checks" in g for g in groups), groups)
    rows = driver.find_elements(By.CSS_SELECTOR, "#timeline .gantt-row.in-group")
    check("timeline: each branch has its own row", len(rows) == 2, len(rows))
    shot(driver, "saga-parallel-child", show="#timeline")
    follow(driver, driver.find_element(By.LINK_TEXT, "child saga"))
    check("child: names the step of its parent", "Started by" in text(driver, "#summary") and "first-deposit" in text(driver, "#summary"))

    # A SUSPENDED saga: retry it from the console, with a reason and a confirmation.
    saga_id = start_review(f"r-{time.time()}")
    api("POST", f"/v1/sagas/{saga_id}/signals/review-decision", {"failed": {"code": "rejected", "message": "reviewer said no"}})
    wait_for_saga(saga_id, lambda s: s["status"] == "SUSPENDED")
    driver.get(BASE + f"/ui/sagas/{saga_id}")
    check("suspended: status shown with a word, not only a colour", "SUSPENDED" in text(driver, "#saga-status"))
    actions = text(driver, "#actions")
    check("suspended: the operator's actions are offered", all(a in actions for a in ["Retry", "Skip a step", "Resolve", "Compensate"]), actions)
    shot(driver, "saga-suspended")
    refused = driver.execute_script(
        "const form = document.querySelector('#actions input[name=action][value=retry]').form;"
        "form.querySelector('button[type=submit]').click(); return form.checkValidity()")
    check("action: refused without a reason and confirmation (the browser asks)", refused is False and "done=" not in driver.current_url)
    take_action(driver, "retry", "the reviewer asked to look again")
    landed(driver, "done=retry")
    check("action: the result is shown", "Retry recorded" in driver.find_element(By.CSS_SELECTOR, ".notice.ok").text)
    check("action: the saga runs again", saga_status(driver) == "PROCESSING")
    history = api("GET", f"/v1/sagas/{saga_id}/history")["entries"]
    recorded = [e for e in history if e["kind"] == "operator_action"]
    check("action: recorded with the caller and the reason",
          recorded and recorded[-1]["actor"] == "local" and "the reviewer asked to look again" in recorded[-1]["detail"], recorded)

    # Live: the decision arrives; the open page shows the saga finish without a reload.
    driver.execute_script("window.consoleTestMarker = 42")
    api("POST", f"/v1/sagas/{saga_id}/signals/review-decision", {"payload": {"approved": True}})
    try:
        wait(driver, 20).until(lambda d: saga_status(d) == "COMPLETED")
        live = driver.execute_script("return window.consoleTestMarker") == 42
        check("live: the saga finished on the open page, with no reload", live)
    except TimeoutException:
        check("live: the saga finished on the open page, with no reload", False, "still " + text(driver, "#saga-status"))
    shot(driver, "saga-finished-live")

    # Live list: a new saga appears in the open list.
    driver.get(BASE + "/ui/sagas?workflow=console-review")
    driver.execute_script("window.consoleTestMarker = 7")
    fresh = start_review(f"r-{time.time()}")
    try:
        wait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#saga-rows a[href='/ui/sagas/{fresh}']"))
        check("live: a new saga appears in the open list", driver.execute_script("return window.consoleTestMarker") == 7)
    except TimeoutException:
        check("live: a new saga appears in the open list", False, f"{fresh} not listed")

    # The workflow diagram: pivot, compensations, parallel branches.
    driver.get(BASE + "/ui/workflows/onboarding")
    branches = [b.text for b in driver.find_elements(By.CSS_SELECTOR, ".flow-branch-label")]
    check("diagram: the parallel branches", len(branches) == 2, branches)
    check("diagram: the compensations", "↺ undo" in text(driver, ".flow"))
    check("diagram: the pivot", "pivot" in text(driver, ".flow-pivot"))
    shot(driver, "workflow-diagram", show="#diagram-h")

    # What can happen: a person asks for a simulation of the workflow, with a seed.
    form = driver.find_element(By.CSS_SELECTOR, "form.simulate")
    runs = form.find_element(By.NAME, "runs")
    runs.clear()
    runs.send_keys("300")
    form.find_element(By.NAME, "seed").send_keys("11")
    follow(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    result = text(driver, "#simulation-result")
    check("simulate: the runs and the seed", "300 runs, seed 11" in result, result)
    check("simulate: the invariants held", "invariants held" in result, result)
    states = driver.find_elements(By.CSS_SELECTOR, "#simulate-h ~ table tbody tr")
    check("simulate: end states listed", len(states) >= 3, len(states))
    summary = states[0].find_element(By.TAG_NAME, "summary")
    summary.click()
    story = states[0].find_element(By.TAG_NAME, "pre").text
    check("simulate: an end state opens to its story", story.startswith("+0.000s  start"), story[:120])
    shot(driver, "workflow-simulation", show="#simulate-h")

    # Dead letters: a malformed reply, with its reason.
    asyncio.run(dead_letter())
    deadline = time.time() + 15
    while time.time() < deadline:
        driver.get(BASE + "/ui/dead-letters")
        if "this is not json" in driver.page_source:
            break
        time.sleep(0.5)
    table = text(driver, "main table")
    check("dead letters: the message and why", "orchestrator" in table.lower() or "reply" in table.lower(), table[:300])
    check("dead letters: its body", "this is not json" in driver.page_source)
    shot(driver, "dead-letters")

    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    driver.get(BASE + "/ui/sagas")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    check("keyboard: the first Tab is the skip link", focused.get_attribute("class") == "skip", focused.get_attribute("outerHTML")[:80])
    focused.send_keys(Keys.ENTER)
    check("keyboard: the skip link moves to the content", driver.switch_to.active_element.get_attribute("id") == "main")
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)")
    check("forms: every field has a label", not unlabelled, unlabelled)


def run_phone(driver):
    saga = find_saga("ada@example.com")
    for path in ["/ui", "/ui/sagas", f"/ui/sagas/{saga['id']}"]:
        driver.get(BASE + path)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        check(f"phone width: {path} fits the screen", overflow <= 1, f"{overflow}px too wide")
    shot(driver, "phone-saga")


def run_credentials(driver):
    # A page asked for with no credential goes to the sign-in page, and back after it.
    driver.get(AUTH_BASE + "/ui/sagas")
    check("sign-in: asked for", "/ui/login" in driver.current_url, driver.current_url)
    follow(driver, driver.find_element(By.ID, "token"), ["not-a-token", Keys.ENTER])
    check("sign-in: a wrong token is refused", "not valid" in text(driver, ".notice.error"))
    follow(driver, driver.find_element(By.ID, "token"), [READER_TOKEN, Keys.ENTER])
    check("sign-in: back where it started", driver.current_url.endswith("/ui/sagas"), driver.current_url)
    check("sign-in: shows who", "reader" in text(driver, ".who"))
    # A reader sees a suspended saga but is offered no action.
    saga_id = start_review(f"r-{time.time()}")
    api("POST", f"/v1/sagas/{saga_id}/signals/review-decision", {"failed": {"code": "rejected", "message": "no"}})
    wait_for_saga(saga_id, lambda s: s["status"] == "SUSPENDED")
    driver.get(AUTH_BASE + f"/ui/sagas/{saga_id}")
    check("scopes: a reader is offered no action", not driver.find_elements(By.CSS_SELECTOR, "#actions form"), text(driver, "#actions"))
    # An operator is offered them, and the action is recorded with the operator's name.
    # Signing out navigates: wait for it to land before going on, or it lands later, on top.
    follow(driver, driver.find_element(By.CSS_SELECTOR, ".who button"))
    landed(driver, "/ui/login")
    check("sign-out: the cookie is gone", driver.get_cookie("baton_console") is None, driver.get_cookies())
    driver.get(AUTH_BASE + f"/ui/sagas/{saga_id}")
    landed(driver, "next=")
    follow(driver, driver.find_element(By.ID, "token"), [OPERATOR_TOKEN, Keys.ENTER])
    landed(driver, f"/ui/sagas/{saga_id}")
    wait(driver).until(EC.presence_of_element_located((By.ID, "actions")))
    take_action(driver, "skip", "settled by phone")
    landed(driver, "done=skip")
    saga = wait_for_saga(saga_id, lambda s: s["status"] == "COMPLETED")
    history = api("GET", f"/v1/sagas/{saga_id}/history")["entries"]
    check("scopes: the operator's skip is recorded with the operator's name",
          any(e["kind"] == "operator_action" and e["actor"] == "operator" for e in history), [e["actor"] for e in history])


if __name__ == "__main__":
    main()
