"""The operator console in a real browser (Debian's Chromium, driven by Playwright) against the
real processes: signing in, the overview and the jobs page following a job live, its timeline,
cancelling a queued job and a batch, redriving a dead letter, models, a tenant's key seeing its
own jobs only, a phone's width, the keyboard; and no error in the browser's console on any page.

One stack for the module, idle at first (no consumer: jobs stay queued, so they can be
cancelled), then working (`working` starts a consumer): the tests run in the file's order.
Screenshots go to a temporary directory, and to CONSOLE_SCREENSHOTS when it names one (how
docs/console/ is refreshed)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from api.routes.console import PAGE_JOBS
from domain.events import JobRequested, decode
from domain.ids import partition_of
from eventlog.deadletters import dead_letter_fields
from eventlog.lanes import Lane
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def stack(make_service: ServiceFactory) -> Service:
    """Projector and API, no consumer yet: a job stays queued."""
    service = make_service()
    service.start_all(consumers=0)
    return service


@pytest.fixture
def working(stack: Service) -> Service:
    """The stack with a consumer, from the first test that asks for it on."""
    if not any(name.startswith("consumer") for name in stack.procs):
        stack.start_consumers(1)
    return stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Fails, never skips, without Chromium: a skip would hide that nothing was tested.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    wanted = os.environ.get("CONSOLE_SCREENSHOTS")
    return [tmp_path_factory.mktemp("screenshots"), *([Path(wanted)] if wanted else [])]


@pytest.fixture(scope="module")
def errors() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def no_console_errors(errors: list[str]) -> Iterator[None]:
    yield
    found, errors[:] = list(errors), []
    assert found == [], found


class Console:
    """A browser context of the console, its pages' errors collected."""

    def __init__(self, context: BrowserContext, base: str, errors: list[str], shots: list[Path]):
        self.context = context
        self.base = base
        self.shots = shots
        context.set_default_timeout(TIMEOUT_MS)
        context.on("page", lambda page: watch(page, errors))
        self.page = context.new_page()

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def sign_in(self, key: str) -> Page:
        page = self.go("/console/sign-in")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        return page

    def shot(self, name: str, full_page: bool = True) -> None:
        for directory in self.shots:
            self.page.screenshot(path=directory / f"{name}.png", full_page=full_page)


def watch(page: Page, errors: list[str]) -> None:
    page.on(
        "console",
        lambda message: (
            errors.append(f"{page.url}: {message.text}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))


@pytest.fixture
def console(
    stack: Service, browser: Browser, errors: list[str], shots: list[Path]
) -> Iterator[Console]:
    context = browser.new_context(viewport=WIDE)
    try:
        yield Console(context, stack.url, errors, shots)
    finally:
        context.close()


@pytest.fixture
def admin(console: Console, stack: Service) -> Console:
    console.sign_in(stack.admin_key)
    return console


def new_key(service: Service, tenant: str, *scopes: str) -> str:
    """A key made in another thread: Playwright's sync API runs an event loop in this one,
    and the harness makes keys with asyncio.run."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(service.new_key, tenant, *scopes).result()


def submit(client: httpx.Client, text: str) -> str:
    response = client.post("/v1/inference", json={"text": text})
    assert response.status_code == 202, response.text
    return cast(str, response.json()["job_id"])


def bury(service: Service, job_id: str) -> str:
    """Set the job's request aside as a dead letter, as a consumer does after too many
    deliveries; the letter's ref."""
    [(entry_id, fields)] = [
        (entry_id, fields)
        for entry_id, fields in service.log()
        if fields.get("job_id") == job_id and fields["type"] == "JobRequested"
    ]
    lane = Lane.of(cast(JobRequested, decode(fields))).name
    letter = dead_letter_fields(entry_id, fields, 6, "delivered 6 times", datetime.now(UTC), lane)
    client = service.redis()
    try:
        letter_id = client.xadd(service.names.dead_letters(partition_of(job_id)), letter)
    finally:
        client.close()
    return f"{partition_of(job_id)}/{letter_id}"


def answered(errors: list[str], status: int) -> None:
    """The browser reported the page's answer of `status`, as it does any 4xx: expected here."""
    found = [e for e in errors if f"status of {status}" in e]
    assert found, errors
    errors.remove(found[0])


def status_of(service: Service, job_id: str) -> str:
    return cast(str, service.http.get(f"/v1/jobs/{job_id}").json()["status"])


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"{page.url} scrolls sideways by {width} px"


# ---------------------------------------------------------------- idle stack


def test_a_wrong_key_is_refused_and_pages_need_a_sign_in(console: Console, stack: Service):
    page = console.go("/console/jobs")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    console.shot("sign-in")
    page.get_by_label("API key").fill("ifk_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    console.sign_in(stack.admin_key)
    # The key is in an HttpOnly cookie of /console, never readable by the page's script.
    [cookie] = console.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert page.evaluate("document.cookie") == ""
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    assert console.context.cookies() == []


def test_a_queued_job_is_cancelled_from_its_page(admin: Console, stack: Service):
    job_id = submit(stack.http, "a note that waits for a consumer")
    page = admin.go(f"/console/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("queued")
    expect(page.locator("#timeline li")).to_have_count(1)
    page.get_by_role("button", name="Cancel this job").click()
    expect(page.get_by_role("status")).to_contain_text("cancelled")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#timeline")).to_contain_text("JobCancelled")
    assert status_of(stack, job_id) == "cancelled"
    admin.shot("job-cancelled")


def test_a_form_from_elsewhere_is_refused(admin: Console, stack: Service):
    job_id = submit(stack.http, "a note nobody else may cancel")
    # The session's cookie is sent (same site), but the form lacks the session's token.
    answer = admin.context.request.post(
        f"{stack.url}/console/jobs/{job_id}/cancel",
        form={"csrf": "0" * 32},
        headers={"Origin": stack.url},
    )
    assert answer.status == 403
    assert status_of(stack, job_id) == "queued"


def test_a_queued_batch_is_cancelled_from_its_page(admin: Console, stack: Service):
    # One job more than a page of the jobs listing holds.
    items = [{"text": f"batch note {i}"} for i in range(PAGE_JOBS + 1)]
    answer = stack.http.post("/v1/inference/batch", json={"items": items})
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]
    page = admin.go("/console/batches")
    row = page.get_by_role("row").filter(has_text=batch_id)
    expect(row).to_contain_text(f"0 / {PAGE_JOBS + 1} ended")
    row.get_by_role("link", name=batch_id).click()
    expect(page.locator("#batch-status")).to_have_text("in_progress")
    page.get_by_role("button", name="Cancel this batch").click()
    expect(page.locator("#batch-status")).to_have_text("cancelled")
    expect(page.locator("progress")).to_have_attribute("value", str(PAGE_JOBS + 1))
    admin.shot("batch")
    results = admin.context.request.get(f"{stack.url}/console/batches/{batch_id}/results")
    lines = results.text().splitlines()
    assert results.status == 200 and len(lines) == PAGE_JOBS + 1
    assert all('"status":"cancelled"' in line for line in lines)
    # Its jobs, filtered by the batch, a page at a time.
    page.get_by_role("link", name="Its jobs").click()
    expect(page.locator("tr[data-job]")).to_have_count(PAGE_JOBS)
    first_page = set(
        page.locator("tr[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
    )
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("tr[data-job]")).to_have_count(1)
    assert page.locator("tr[data-job]").get_attribute("data-job") not in first_page
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)


def test_the_jobs_page_filters_by_status(admin: Console, stack: Service):
    queued = submit(stack.http, "a note still queued")
    page = admin.go("/console/jobs")
    page.get_by_label("cancelled").check()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=cancelled"))
    statuses = page.locator("tr[data-job] .status")
    expect(statuses.first).to_have_text("cancelled")
    assert set(statuses.all_inner_texts()) == {"cancelled"}
    expect(page.locator(f'tr[data-job="{queued}"]')).to_have_count(0)


def test_a_dead_letter_is_redriven(admin: Console, stack: Service):
    job_id = submit(stack.http, "a note that crashed its consumers")
    ref = bury(stack, job_id)
    page = admin.go("/console/dead-letters")
    row = page.get_by_role("row").filter(has_text=ref)
    expect(row).to_contain_text("delivered 6 times")
    admin.shot("dead-letters")
    row.get_by_role("button", name=f"Redrive letter {ref}").click()
    expect(page.locator("#redriven")).to_contain_text(f"{ref} → new job")
    new_job = page.locator("#redriven a").inner_text()
    assert new_job != job_id and status_of(stack, new_job) == "queued"
    expect(page.get_by_role("row").filter(has_text=ref)).to_have_count(0)


# ---------------------------------------------------------------- working stack


def test_a_job_appears_and_finishes_live_on_the_overview_and_jobs_pages(
    admin: Console, working: Service
):
    page = admin.go("/console")
    before = int(page.locator("#tile-succeeded").inner_text())
    jobs = admin.context.new_page()
    jobs.goto(f"{working.url}/console/jobs")
    job_id = submit(working.http, "limited time offer, click now to claim your free prize")
    # Neither page is reloaded: their live parts are.
    row = jobs.locator(f'tr[data-job="{job_id}"]')
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(page.locator("#tile-succeeded")).not_to_have_text(str(before))
    assert int(page.locator("#tile-succeeded").inner_text()) > before
    expect(page.locator("#chart-throughput svg rect").first).to_be_visible()
    expect(page.locator("#chart-latency svg circle.s-p50").first).to_be_visible()
    expect(page.locator("#chart-lag svg")).to_be_visible()
    expect(page.locator("#chart-models svg rect.s-ok").first).to_be_visible()
    expect(page.locator("#chart-partitions svg")).to_be_visible()
    admin.shot("overview")
    admin.page = jobs
    admin.shot("jobs")
    row.get_by_role("link", name=job_id).click()
    expect(jobs.locator("#timeline .event-type")).to_have_text(
        ["JobRequested", "JobStarted", "JobSucceeded"]
    )
    admin.shot("job")


def test_models_show_their_metrics_and_confusion_matrix(admin: Console, working: Service):
    page = admin.go("/console/models")
    picture = page.locator(".confusion img").first
    expect(picture).to_be_visible()
    assert picture.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.get_by_role("table").first).to_contain_text("Precision")
    admin.shot("models")


def test_a_tenants_key_sees_its_own_jobs_only(
    console: Console, working: Service, errors: list[str]
):
    acme = working.client(new_key(working, "acme", "submit", "read"))
    globex = working.client(new_key(working, "globex", "submit", "read"))
    mine, theirs = submit(acme, "acme's note"), submit(globex, "globex's note")
    for job_id in (mine, theirs):
        working.wait_terminal(job_id)
    page = console.sign_in(new_key(working, "acme", "read"))
    expect(page.get_by_text("shown to an admin's key only")).to_be_visible()
    expect(page.get_by_role("link", name="Dead letters")).to_have_count(0)
    page = console.go("/console/jobs")
    expect(page.locator(f'tr[data-job="{mine}"]')).to_be_visible()
    expect(page.locator(f'tr[data-job="{theirs}"]')).to_have_count(0)
    # No cancel scope: no cancel button.
    page = console.go(f"/console/jobs/{mine}")
    expect(page.get_by_role("button", name="Cancel this job")).to_have_count(0)
    page = console.go(f"/console/jobs/{theirs}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    answered(errors, 404)
    page = console.go("/console/dead-letters")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    answered(errors, 403)


def test_pages_fit_a_phones_width(browser: Browser, working: Service, errors, shots):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        phone = Console(context, working.url, errors, shots)
        phone.sign_in(working.admin_key)
        for path in ("/console", "/console/jobs", "/console/batches", "/console/models"):
            no_horizontal_scroll(phone.go(path))
        phone.go("/console")
        phone.shot("overview-phone")
    finally:
        context.close()


def test_the_console_is_usable_with_the_keyboard(console: Console, working: Service):
    page = console.go("/console/sign-in")
    # The key field has the focus; Enter sends the form.
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(working.admin_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # The first stop is the link that skips to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Tab reaches the navigation, Enter follows it.
    page.locator("body").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Jobs":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    # Every form control has a label.
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), button')]
             .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                     && !el.textContent.trim()).length"""
    )
    assert unlabelled == 0
