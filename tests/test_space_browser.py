"""The Space in a real browser: headless Chromium (Debian's package) driven by Playwright.

What a visitor sees is checked on the rendered page, by element boxes and text, not only "the page loads": the
form's button above the fold at 1366×900, the progress drawn on the status line only while the table fills in model
by model, hostile names shown as typed and no server path anywhere, the command line's default metrics ticked, the
metric description and the "also score with" choices following "Rank by", a tie warning, and a phone-width layout
without sideways scrolling. At both 1366×900 and 390 px wide: no empty result boxes and a disabled, smaller Stop
before a ranking, bold words in the page's font; after a ranking the chart in view, the default metrics named with
the rule that chose them, the first score column readable and the other score columns in the table (reached by
scrolling the table on a phone), the CSV and the parquet (with the run's provenance, as ``lead-hub push`` needs)
offered; Stop keeping the model in progress, offering the partial ranking's chart and files and leaving no ranking
thread behind; a bad upload told in one sentence on the status line, in view, with no pop-up and no badge over it.

With ``LEAD_HUB_SCREENSHOT_DIR`` set, the tests at both widths leave ``ranked``, ``stopped`` and ``bad_upload``
screenshots of the viewport there (``tools/refresh_docs.py --screenshot`` keeps them under space/screenshots/).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from test_space import (  # noqa: F401 - feature_cache is a fixture shared with test_space
    DEMO_MODEL_NAMES,
    REPOSITORY_ROOT,
    SPACE_DIR,
    SpaceLimits,
    feature_cache,
    launched_app,
    png_bytes,
)

from lead_hub.leaderboard import Leaderboard
from lead_hub.ranking import DEFAULT_METRICS, DEFAULT_METRICS_RULE, DEMO_DATASET

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGUMENTS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RANKING_TIMEOUT_MS = 600_000
"""Generous: the ranking runs on whatever CPU the test machine has to spare."""
_FINAL_STATUS_MARKERS = ("Ranked ", "No model could be scored", "Not ranked:", "Stopped ")
"""Words that only a ranking's last status says (space/ranking_job.py and app.py)."""
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"laptop": LAPTOP, "phone": PHONE}
SCREENSHOT_DIR = os.environ.get("LEAD_HUB_SCREENSHOT_DIR")
"""Where the tests leave their screenshots of the viewport for the docs (tools/refresh_docs.py --screenshot)."""

BROWSER_REQUIRED = os.environ.get("LEAD_HUB_REQUIRE_BROWSER") == "1"
"""Set by .ci/run, which installs chromium: there a missing browser fails the test instead of skipping it."""

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file() and not BROWSER_REQUIRED,
                                reason=f"needs Debian's chromium at {CHROMIUM} "
                                "(apt-get install -y chromium, or space/ci_setup.sh); Playwright's own browser "
                                "download is not used")

# The boxes of what Gradio draws while an event runs: its status trackers holding a progress bar, text or timer.
_PROGRESS_BOXES = """() => [...document.querySelectorAll('.progress-text, .progress-bar, .eta-bar, .progress-level')]
    .map(element => element.closest('.wrap') || element)
    .filter(element => !element.classList.contains('hide'))
    .map(element => element.getBoundingClientRect())
    .filter(box => box.width > 0 && box.height > 0)
    .map(box => ({x: box.x, y: box.y, width: box.width, height: box.height}))"""


@pytest.fixture(scope="module")
def browser(feature_cache):  # noqa: F811 - the fixture imported above
    from playwright.sync_api import sync_playwright

    with launched_app(SpaceLimits(), feature_cache) as url, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGUMENTS)
        yield chromium, url
        chromium.close()


def open_page(browser, viewport: dict):
    chromium, url = browser
    page = chromium.new_page(viewport=viewport)
    page.goto(url)
    page.wait_for_selector("#rank-button", timeout=60_000)
    return page


@pytest.fixture
def page(browser):
    page = open_page(browser, LAPTOP)
    yield page
    page.close()


@pytest.fixture(params=sorted(VIEWPORTS))
def sized_page(browser, request):
    """A page at 1366×900 (``laptop``) or 390×844 (``phone``); ``sized_page.viewport_name`` says which."""
    page = open_page(browser, VIEWPORTS[request.param])
    page.viewport_name = request.param
    yield page
    page.close()


def save_screenshot(page, name: str, *, show: str | None = None) -> None:
    """With ``LEAD_HUB_SCREENSHOT_DIR`` set, a screenshot of the viewport as ``<name>_<viewport>.png`` there: at the
    page's top on a laptop; on a phone with ``show`` (a selector) at the top of the screen."""
    if not SCREENSHOT_DIR:
        return
    if show is not None and page.viewport_name == "phone":
        page.locator(show).evaluate("element => element.scrollIntoView({block: 'start'})")
    else:
        page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=Path(SCREENSHOT_DIR) / f"{name}_{page.viewport_name}.png")


def in_viewport(page, selector: str) -> bool:
    """Whether the element's box is wholly inside the browser window as it is scrolled now."""
    return page.locator(selector).evaluate("""element => { const b = element.getBoundingClientRect();
        return b.width > 0 && b.top >= 0 && b.left >= 0 && b.bottom <= window.innerHeight + 1
               && b.right <= window.innerWidth + 1; }""")


def ranking_threads() -> list[threading.Thread]:
    """The Space's ranking threads still alive in this process (the app is served in-process)."""
    return [thread for thread in threading.enumerate() if thread.name == "lead-hub-space-ranking"]


def offered_files(page) -> dict[str, str]:
    """The files the page offers for download once a ranking ended: name → absolute download URL."""
    links = page.locator("#leaderboard-files a[href]")
    return {link.get_attribute("download") or link.inner_text().strip(): link.evaluate("link => link.href")
            for link in links.all()}


def box(locator) -> dict:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not shown"
    return found


def overlaps(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def upload_zip(page, path: Path, shown_name: str) -> None:
    """Clear the form's demo zip and upload ``path`` as a visitor would; wait until the page lists the upload.

    Gradio's file field lists an uploaded file as a table row (name, size, download link); the ``.file-name``
    line it shows while the bytes are on their way is transient and can come and go between two polls, so the
    row is what is waited for, and first its absence: a file chosen while the clear is still being applied can
    be wiped by it."""
    from playwright.sync_api import expect

    upload = page.locator("#dataset-zip")
    upload.get_by_label("Clear").click()
    expect(upload.get_by_role("cell")).to_have_count(0)
    with page.expect_response(lambda response: response.request.method == "POST" and "/upload" in response.url,
                              timeout=RANKING_TIMEOUT_MS) as answer:
        upload.locator("input[type=file]").set_input_files(str(path))
    assert answer.value.ok, f"the Space answered the upload with HTTP {answer.value.status}"
    try:
        expect(upload.get_by_role("cell", name=re.compile(re.escape(shown_name)))).to_be_visible(timeout=120_000)
    except AssertionError as error:
        raise AssertionError(f"the page does not list {shown_name}; the upload field shows "
                             f"{upload.inner_text()!r}") from error


def set_samples_per_class(page, samples: int) -> None:
    """Open "More settings" and type ``samples`` in the slider's number field; the settings stay open.

    On a loaded machine the slider sometimes takes its default (30) back just after the page has opened, and the
    ranking then runs at 30 per class: so the value is checked through the range input, which follows it only
    once the slider component holds it, and typed again when it did not hold. What a visitor would see is what
    the tests assert afterwards: the final status names the number of images ranked."""
    from playwright.sync_api import expect

    page.locator("#more-settings").get_by_text("More settings").click()
    field = page.locator("#samples-per-class input[type=number]")
    slider = page.locator("#samples-per-class input[type=range]")
    for attempt in range(3):
        field.fill(str(samples))
        field.press("Tab")  # leaving the field commits the value, as a visitor's next click does
        try:
            expect(slider).to_have_value(str(samples), timeout=5_000)
            expect(field).to_have_value(str(samples), timeout=5_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def record_status_texts(page) -> None:
    """From now on, every text the status line shows, however briefly, is kept in ``window.statusTexts``."""
    page.evaluate("""() => {
        const status = document.querySelector('#ranking-status');
        window.statusTexts = [];
        new MutationObserver(() => window.statusTexts.push(status.innerText))
            .observe(status, {subtree: true, childList: true, characterData: true});
    }""")


def click_rank(page) -> None:
    """Press **Rank models**, noting how many rankings the page has seen end (``data-rankings-ended`` on the status
    line, counted by the page), so that :func:`final_status` waits for this ranking's end, not the last one's."""
    page.evaluate("""() => { window.rankingsEndedBefore =
        Number(document.querySelector('#ranking-status').dataset.rankingsEnded || 0); }""")
    page.locator("#rank-button").click()


def final_status(page) -> str:
    """The status line's text once the ranking started by :func:`click_rank` has ended, whichever way (ranked,
    nothing scored, an error, Stop): a test then asserts what it expects and, when that fails, shows what the page
    said instead of timing out."""
    return page.wait_for_function(
        f"""() => {{
            const status = document.querySelector('#ranking-status');
            const text = status.innerText;
            return Number(status.dataset.rankingsEnded || 0) > window.rankingsEndedBefore
                && {list(_FINAL_STATUS_MARKERS)!r}.some(marker => text.includes(marker)) && text;
        }}""", polling=250, timeout=RANKING_TIMEOUT_MS).json_value()


def choose_primary_metric(page, name: str) -> None:
    page.locator("#primary-metric input").click()
    page.get_by_role("option", name=name, exact=True).click()


def column_cells(page, header: str) -> list[dict]:
    """The table's drawn body cells in the column headed ``header``: their text and box (x, right)."""
    return page.locator("#leaderboard-table").evaluate("""(table, header) => {
        const heading = [...table.querySelectorAll('th[data-heading]')].find(th => th.innerText.trim() === header);
        if (!heading) return [];
        return [...table.querySelectorAll(`[role=gridcell][data-col="${heading.dataset.heading}"]`)]
            .map(cell => cell.getBoundingClientRect().width > 0 && {text: cell.innerText.trim(),
                                                                   x: cell.getBoundingClientRect().x,
                                                                   right: cell.getBoundingClientRect().right})
            .filter(Boolean);
    }""", header)


def default_metrics_sentence() -> str:
    """How the status names the page's default metrics and the rule that chose them (ranking_job.defaults_taken)."""
    return (f"Defaults: metrics {', '.join(DEFAULT_METRICS)} ({DEFAULT_METRICS_RULE}; 'Also score with' under More "
            "settings)")


def shown_model_names(page) -> list[str]:
    text = page.locator("#leaderboard-table").inner_text()
    return [name for name in DEMO_MODEL_NAMES if name in text]


def test_the_form_fits_a_laptop_screen_with_rank_and_stop_above_the_fold(page):
    for element in ("#rank-button", "#stop-button", "#metric-description", "#dataset-zip"):
        found = box(page.locator(element))
        assert found["y"] + found["height"] <= LAPTOP["height"], f"{element} is below the fold at 1366×900"
    assert page.locator("#metric-description").get_by_text("LEAD").is_visible()
    # The example inputs are on the page too.
    assert page.get_by_text("demo zip, demo zoo, LEAD").is_visible()
    # The command line's default metrics: LEAD ranks, the others are ticked under More settings, and a visitor
    # can untick them.
    assert page.locator("#primary-metric input").input_value() == DEFAULT_METRICS[0]
    page.locator("#more-settings").get_by_text("More settings").click()
    others = page.locator("#other-metrics")
    ticked = [name for name in DEFAULT_METRICS[1:] if others.get_by_label(name, exact=True).is_checked()]
    assert ticked == list(DEFAULT_METRICS[1:])
    assert others.locator("input:checked").count() == len(DEFAULT_METRICS) - 1
    others.get_by_label(DEFAULT_METRICS[1], exact=True).uncheck()
    assert not others.get_by_label(DEFAULT_METRICS[1], exact=True).is_checked()


def test_rows_appear_model_by_model_with_the_progress_on_the_status_line_only(page, tmp_path):
    upload_zip(page, DEMO_DATASET, "eurosat_mini")
    set_samples_per_class(page, 7)  # a sample no other test uses: every model is extracted, so the run lasts
    record_status_texts(page)  # a model's extraction bar can last < 0.1 s
    click_rank(page)
    # The moment the first row is in the table while the ranking still runs: where is the progress drawn?
    state = page.wait_for_function(
        f"""() => {{
            const table = document.querySelector('#leaderboard-table');
            const rows = {DEMO_MODEL_NAMES!r}.filter(name => table.innerText.includes(name)).length;
            const progress = ({_PROGRESS_BOXES})();
            const rect = element => {{ const found = document.querySelector(element);
                                       if (!found) return null;
                                       const b = found.getBoundingClientRect();
                                       return {{x: b.x, y: b.y, width: b.width, height: b.height}}; }};
            return rows >= 1 && rows < 6 && progress.length > 0 &&
                {{rows, progress, table: rect('#leaderboard-table'), chart: rect('#leaderboard-chart'),
                  status: rect('#ranking-status'), text: document.querySelector('#ranking-status').innerText}};
        }}""", polling=100, timeout=RANKING_TIMEOUT_MS).json_value()
    page.screenshot(path=Path(os.environ.get("LEAD_HUB_SCREENSHOT_DIR", tmp_path)) / "streaming.png")
    for drawn in state["progress"]:
        assert not overlaps(drawn, state["table"]), f"progress {drawn} covers the table {state['table']}"
        assert overlaps(drawn, state["status"]), f"progress {drawn} is not on the status line"
    assert state["chart"] is None  # the chart comes with the result: no empty box while the rows fill in
    ended = final_status(page)
    shown = page.evaluate("() => window.statusTexts")
    # Model folders by name only: the extraction bars name local-dir models, never with the server's path.
    assert any("local-dir:" in text for text in shown), shown
    assert not any(str(REPOSITORY_ROOT) in text for text in shown)
    assert "Ranked 6 models on eurosat_mini.zip [train], 70 images in 10 classes" in ended, ended
    assert shown_model_names(page) == DEMO_MODEL_NAMES
    assert "/" not in "".join(page.locator("#leaderboard-table").inner_text().split("\n")[1:])  # no paths


def test_a_visitor_uploads_the_demo_zip_ranks_and_sees_the_ranked_table_and_chart(page, tmp_path):
    upload_zip(page, DEMO_DATASET, "eurosat_mini")
    set_samples_per_class(page, 6)
    click_rank(page)
    status = page.locator("#ranking-status")
    ended = final_status(page)
    assert "Ranked 6 models on eurosat_mini.zip [train], 60 images in 10 classes" in ended, ended

    chart = page.locator("#leaderboard-chart img[src*='leaderboard.png']")
    chart.wait_for(timeout=60_000)
    table = page.locator("#leaderboard-table")
    assert table.get_by_text("lead", exact=True).filter(visible=True).count() == 1  # the score column
    row_tops = {}
    for name in DEMO_MODEL_NAMES:
        cell = table.get_by_text(name, exact=True).filter(visible=True)
        assert cell.count() == 1, f"{name} is not shown once in the table"
        row_tops[name] = box(cell)["y"]
    best = status.inner_text().split("predicted best: ", 1)[1].splitlines()[0].strip().removesuffix(".")
    assert min(row_tops, key=row_tops.get) == best  # the best model heads the table
    assert not overlaps(box(chart), box(table))  # the chart sits below the table, not over it

    screenshot = tmp_path / "space.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("LEAD_HUB_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, SPACE_DIR / "screenshot.png")


def test_hostile_member_names_show_as_typed_and_no_server_path_is_shown(page, tmp_path):
    hostile = tmp_path / "upload.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("cats/a.png", png_bytes((1, 2, 3)))
        archive.writestr("cats/<b>bold</b><img src=x>.txt", b"not an image")
    upload_zip(page, hostile, "upload.zip")
    click_rank(page)
    status = page.locator("#ranking-status")
    assert final_status(page).startswith("Not ranked:")
    text = status.inner_text()
    assert "<b>bold</b><img src=x>.txt" in text  # the name as typed, not rendered as markup
    assert status.locator("b:text('bold'), img[src='x']").count() == 0
    assert "upload.zip" in text and "/tmp" not in text and str(tmp_path) not in text


def test_rank_by_changes_the_description_and_the_other_choices_and_ties_are_flagged(page):
    choose_primary_metric(page, "hscore")
    page.locator("#metric-description").get_by_text("hscore").wait_for(timeout=30_000)
    set_samples_per_class(page, 6)  # 60 images, at most 1,024 feature dimensions: H-score saturates
    others = page.locator("#other-metrics")  # in the settings left open
    others.get_by_label("lead", exact=True).wait_for(timeout=30_000)
    assert others.get_by_label("hscore", exact=True).count() == 0
    assert others.get_by_label("pactran", exact=True).is_checked()  # the other default stays ticked
    click_rank(page)
    ended = final_status(page)
    assert "Ranked 6 models" in ended, ended
    # Ranked by the tied metric, the ranking itself is in doubt: one sentence saying what to do.
    tie = re.search(r"Warning: hscore cannot rank [2-6] models that all score 9 .*", ended)
    assert tie and "use more samples per class" in tie.group() and "not affected" not in tie.group(), ended
    assert "Defaults:" not in ended  # the visitor chose the metrics and the sample: no default to name


def test_before_a_ranking_no_empty_result_box_a_quiet_disabled_stop_and_bold_in_the_pages_font(sized_page):
    page = sized_page
    # The chart and the files appear with a result only: no empty boxes before a ranking.
    assert not page.locator("#leaderboard-chart").is_visible() and not page.locator("#leaderboard-files").is_visible()
    rank_button, stop_button = page.locator("#rank-button"), page.locator("#stop-button")
    assert rank_button.is_enabled() and stop_button.is_disabled()  # nothing to stop yet
    rank_box, stop_box = box(rank_button), box(stop_button)
    assert stop_box["width"] * stop_box["height"] < 0.6 * rank_box["width"] * rank_box["height"]
    assert stop_button.evaluate("button => getComputedStyle(button).backgroundColor") != \
        rank_button.evaluate("button => getComputedStyle(button).backgroundColor")
    # Every bold word is drawn by the page's own font: were a glyph missing from the bold face, the browser would
    # take it from the next font named, so a monospace and a serif fallback would give the text different widths.
    widths = page.evaluate("""() => [...document.querySelectorAll('strong, h1, button')]
        .filter(element => element.offsetParent !== null && element.innerText.trim())
        .map(element => {
            const style = getComputedStyle(element), family = style.fontFamily.split(',')[0];
            const context = document.createElement('canvas').getContext('2d');
            const width = fallback => { context.font = `${style.fontWeight} ${style.fontSize} ${family}, ${fallback}`;
                                        return context.measureText(element.innerText.trim()).width; };
            return [element.innerText.trim(), style.fontWeight, width('monospace'), width('serif')];
        })""")
    assert any(weight in ("600", "700") for _, weight, _, _ in widths), widths
    for text, weight, with_monospace, with_serif in widths:
        assert abs(with_monospace - with_serif) < 0.5, f"{text!r} (weight {weight}) is not drawn in the page's font"


def test_a_ranking_offers_the_chart_in_view_the_scores_and_the_files_to_publish(sized_page, tmp_path):
    page = sized_page
    upload_zip(page, DEMO_DATASET, "eurosat_mini")
    set_samples_per_class(page, 5)
    page.locator("#more-settings").get_by_text("More settings").click()  # closed again, as a visitor leaves it
    click_rank(page)
    ended = final_status(page)
    assert "Ranked 6 models on eurosat_mini.zip [train], 50 images in 10 classes" in ended, ended
    # The default metrics are named with the rule that chose them; the sample was the visitor's, so it is not.
    assert default_metrics_sentence() in ended and "images per class at most" not in ended, ended
    chart = page.locator("#leaderboard-chart img[src*='leaderboard.png']")
    chart.wait_for(timeout=60_000)
    page.evaluate("() => window.scrollTo(0, 0)")
    table = page.locator("#leaderboard-table")
    primary, *others = DEFAULT_METRICS
    score_header = table.get_by_role("columnheader", name=primary, exact=True).first
    if page.viewport_name == "laptop":
        # The whole chart is in view without scrolling, below the table in the results column, with the status's
        # defaults and warning above the table and every score column in the table's width.
        assert box(chart)["y"] + box(chart)["height"] <= LAPTOP["height"], "the chart is below the fold"
        assert box(chart)["y"] >= box(table)["y"] + box(table)["height"]
        for name in DEFAULT_METRICS:
            header = box(table.get_by_role("columnheader", name=name, exact=True).first)
            assert header["x"] + header["width"] <= box(table)["x"] + box(table)["width"], f"{name} is cut off"
    else:
        # The page itself never scrolls sideways; the first score column is in view beside the model names, and
        # the chart keeps legible labels (drawn at least 800 px wide, in a box that scrolls sideways).
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        assert box(score_header)["x"] + box(score_header)["width"] <= PHONE["width"], "the score column is cut off"
        assert box(chart)["width"] >= 800
        # It starts at the box's left edge, so the model names are in view and the rest is reached by scrolling.
        assert box(chart)["x"] >= box(page.locator("#leaderboard-chart"))["x"] - 1
    assert page.locator("#leaderboard-chart input[type=file]").count() == 0  # a result, not an upload field
    # Each model's score is shown in the first score column, and on a phone within the screen's width.
    width = VIEWPORTS[page.viewport_name]["width"]
    scores = column_cells(page, primary)
    assert len(scores) == len(DEMO_MODEL_NAMES), (scores, table.inner_text())
    assert all(re.fullmatch(r"-?\d\.\d+", cell["text"]) and cell["right"] <= width for cell in scores), scores
    if page.viewport_name == "phone":
        # The other score columns are reached by scrolling the table sideways, not the page.
        viewport = page.locator("#leaderboard-table .virtual-table-viewport")
        for name in others:
            viewport.evaluate("""(viewport, name) => {
                const heading = [...viewport.querySelectorAll('th[data-heading]')]
                    .find(th => th.innerText.trim() === name);
                viewport.scrollLeft += heading.getBoundingClientRect().left - viewport.getBoundingClientRect().left;
            }""", name)
            cells = column_cells(page, name)
            assert len(cells) == len(DEMO_MODEL_NAMES), (name, cells)
            assert all(0 <= cell["x"] and cell["right"] <= width for cell in cells), (name, cells)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        viewport.evaluate("viewport => { viewport.scrollLeft = 0; }")
    # CSV and parquet are offered; the parquet keeps the run's provenance, which `lead-hub push` publishes.
    files = offered_files(page)
    assert {"leaderboard.csv", "leaderboard.parquet", "leaderboard_per_class.parquet"} <= set(files), files
    parquet = tmp_path / "leaderboard.parquet"
    parquet.write_bytes(page.request.get(files["leaderboard.parquet"]).body())
    board = Leaderboard.load(parquet)
    assert sorted(board.table["model_id"].str.rsplit("/", n=1).str[-1]) == DEMO_MODEL_NAMES
    assert board.provenance["dataset"] == "eurosat_mini.zip" and board.provenance["samples"] == 50
    per_class = tmp_path / "per_class.parquet"
    per_class.write_bytes(page.request.get(files["leaderboard_per_class.parquet"]).body())
    import pandas as pd

    assert set(pd.read_parquet(per_class)["class_name"]) == {"AnnualCrop", "Forest", "HerbaceousVegetation",
                                                              "Highway", "Industrial", "Pasture", "PermanentCrop",
                                                              "Residential", "River", "SeaLake"}
    save_screenshot(page, "ranked", show="#ranking-status")


def test_stop_keeps_the_model_in_progress_offers_its_files_and_frees_the_machine(sized_page):
    page = sized_page
    upload_zip(page, DEMO_DATASET, "eurosat_mini")
    # A sample no other test uses (one per width): every model is extracted, so the ranking is still running.
    set_samples_per_class(page, {"laptop": 8, "phone": 9}[page.viewport_name])
    page.locator("#more-settings").get_by_text("More settings").click()
    click_rank(page)
    stop_button = page.locator("#stop-button")
    status = page.locator("#ranking-status")
    # The first row is in (the status line's own text, not its progress bar's "scored 1 of 6 models").
    status.get_by_text(re.compile(r"^Scored 1 of 6 models")).first.wait_for(timeout=RANKING_TIMEOUT_MS)
    assert stop_button.is_enabled() and page.locator("#rank-button").is_disabled()  # while the ranking runs
    rows_at_stop = len(shown_model_names(page))
    stop_button.click()
    ended = final_status(page)
    stopped = re.search(r"Stopped after (\d) of 6 models on eurosat_mini.zip", ended)
    assert stopped, ended
    kept = int(stopped.group(1))
    # The model in progress when Stop was pressed is kept, and the table holds what the status says.
    assert kept >= rows_at_stop + 1 and len(shown_model_names(page)) == kept, (rows_at_stop, ended)
    page.locator("#leaderboard-chart img[src*='leaderboard.png']").wait_for(timeout=60_000)
    files = offered_files(page)
    assert {"leaderboard.csv", "leaderboard.parquet"} <= set(files), files
    # The stopped ranking's thread has ended: nothing of it holds the CPU, and the buttons are back to idle.
    assert ranking_threads() == []
    page.locator("#rank-button:not([disabled])").wait_for(timeout=60_000)
    assert stop_button.is_disabled()
    save_screenshot(page, "stopped", show="#ranking-status")
    # The next ranking starts at once: it never waits for the stopped one.
    record_status_texts(page)
    click_rank(page)
    # The models scored before are read from the feature cache: the rows can follow each other quickly.
    status.get_by_text(re.compile(r"^(Scored \d of 6 models|Ranked 6 models)")).first.wait_for(
        timeout=RANKING_TIMEOUT_MS)
    # Stopped again if still running (checked and clicked in one step: the ranking may just have ended).
    page.evaluate("() => { const stop = document.querySelector('#stop-button'); if (!stop.disabled) stop.click(); }")
    final_status(page)
    assert not any("waiting for the previous ranking" in text for text in page.evaluate("() => window.statusTexts"))


def test_a_bad_upload_is_one_plain_sentence_in_view_without_popups_or_badge(sized_page, tmp_path):
    page = sized_page
    bad = tmp_path / "holiday_photos.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("beach/a.png", png_bytes((1, 2, 3)))
        archive.writestr("beach/notes.txt", b"not an image")
    upload_zip(page, bad, "holiday_photos.zip")
    status = page.locator("#ranking-status")
    for attempt in range(2):  # a second failure must not pile a second pop-up on the first
        click_rank(page)
        ended = final_status(page)
        page.locator("#rank-button:not([disabled])").wait_for(timeout=60_000)
    assert ended.startswith("Not ranked: holiday_photos.zip: member 'beach/notes.txt' is not an image file"), ended
    sentence = ended.removeprefix("Not ranked: ")
    assert sentence.count(". ") == 0 and sentence.endswith(".")
    assert not re.search(r"[A-Z][a-z]+(Error|Limits)|/tmp|HF_|command", sentence), sentence
    assert page.locator(".toast-body").count() == 0  # no pop-up, so none piles up
    # Nothing is drawn over the status text: Gradio's red Error badge is not shown on it.
    text_box = box(status.locator("p").first)
    covering = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(element => element.offsetParent !== null && /^Error/.test(element.innerText || '')
                && element.children.length === 0)
        .map(element => { const b = element.getBoundingClientRect();
                          return {x: b.x, y: b.y, width: b.width, height: b.height}; })""")
    assert not any(overlaps(text_box, badge) for badge in covering), covering
    assert in_viewport(page, "#ranking-status"), "the status is scrolled out of view after the error"
    save_screenshot(page, "bad_upload", show="#ranking-status")


def test_on_a_phone_the_page_reads_without_sideways_scrolling(browser, tmp_path):
    page = open_page(browser, PHONE)
    try:
        page_width = page.evaluate("() => document.documentElement.scrollWidth")
        assert page_width <= PHONE["width"], f"the page is {page_width} px wide on a {PHONE['width']} px phone"
        for element in ("#rank-button", "#ranking-status", "#leaderboard-table", "#metric-description"):
            found = box(page.locator(element))
            assert found["x"] >= 0 and found["x"] + found["width"] <= PHONE["width"], f"{element} is cut off"
        # The form comes first, then the results, stacked in one column.
        assert box(page.locator("#rank-button"))["y"] < box(page.locator("#ranking-status"))["y"]
        page.screenshot(path=tmp_path / "phone.png", full_page=True)
    finally:
        page.close()
