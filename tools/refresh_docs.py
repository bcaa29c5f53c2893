"""Regenerate the figures the README shows from the current code, so that none of them goes stale.

    python tools/refresh_docs.py                # rerun the README's demo command, rewrite its output block
    python tools/refresh_docs.py --screenshot   # also redraw the Space's screenshots in a real browser
    python tools/refresh_docs.py --screenshots-only   # only the Space's screenshots

The demo block is the stdout of :data:`DEMO_COMMAND`, run exactly as the README prints it, in a fresh temporary
folder with its own empty feature cache (``$LEAD_HUB_CACHE``), as in a new clone, at a fixed console width of
:data:`CONSOLE_COLUMNS`.
``tests/test_readme_demo.py`` reruns the same ranking and checks the block's model order and scores against it.

The screenshots come from the Space's browser tests (``tests/test_space_browser.py``: headless Debian chromium
driven by Playwright, see ``space/ci_setup.sh``): the full page after ranking the demo, copied over
``space/screenshot.png`` when ``LEAD_HUB_UPDATE_SCREENSHOT=1``, and the viewport at 1366×900 and at 390 px wide
after a ranking, after Stop and after a bad upload (:data:`SPACE_SCREENSHOTS`), which the tests leave in
``LEAD_HUB_SCREENSHOT_DIR`` and which are written under ``space/screenshots/`` as 256-colour PNGs (a few tens of
KB each instead of a few hundred).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
README = REPOSITORY_ROOT / "README.md"
DEMO_COMMAND = ("lead-hub", "rank", "--zoo", "demo", "--dataset", "demo", "--image-size", "64")
"""The README's demo command, word for word."""
CONSOLE_COLUMNS = 100
SCREENSHOT_TEST = "test_a_visitor_uploads_the_demo_zip_ranks_and_sees_the_ranked_table_and_chart"
SCREENSHOT_DIR = REPOSITORY_ROOT / "space" / "screenshots"
SPACE_SCREENSHOT_TESTS = {
    "ranked": "test_a_ranking_offers_the_chart_in_view_the_scores_and_the_files_to_publish",
    "stopped": "test_stop_keeps_the_model_in_progress_offers_its_files_and_frees_the_machine",
    "bad_upload": "test_a_bad_upload_is_one_plain_sentence_in_view_without_popups_or_badge",
}
"""The browser test that leaves each screenshot of the docs, by the state it shows."""
SPACE_SCREENSHOTS = tuple(f"{state}_{viewport}.png" for state in SPACE_SCREENSHOT_TESTS
                          for viewport in ("laptop", "phone"))
MAX_SCREENSHOT_BYTES = 300_000
BEGIN, END = "<!-- demo-output: begin -->", "<!-- demo-output: end -->"
_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(.*)$")


@dataclass(frozen=True)
class DemoRow:
    """One ranked row of a printed leaderboard: its rank, model name and primary score as printed."""

    rank: int
    model: str
    score: str


def run_demo_command() -> str:
    """Stdout of :data:`DEMO_COMMAND` in a new temporary folder and cache, lines stripped of trailing blanks."""
    command = [sys.executable, "-m", "lead_hub.cli", *DEMO_COMMAND[1:]]
    with tempfile.TemporaryDirectory(prefix="lead_hub_readme_demo_") as folder:
        environment = {**os.environ, "COLUMNS": str(CONSOLE_COLUMNS), "HF_HUB_OFFLINE": "1",
                       "LEAD_HUB_CACHE": str(Path(folder) / "cache")}
        finished = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(DEMO_COMMAND)} failed (exit {finished.returncode}):\n{finished.stderr}")
    return "\n".join(line.rstrip() for line in finished.stdout.splitlines()).strip("\n")


def demo_block(readme_text: str) -> str:
    """The text between the README's demo-output markers, without the code fence."""
    start, end = readme_text.index(BEGIN) + len(BEGIN), readme_text.index(END)
    return re.sub(r"^\s*```text\n|```\s*$", "", readme_text[start:end].strip("\n"))


def with_demo_block(readme_text: str, output: str) -> str:
    """``readme_text`` with the demo-output block replaced by ``output`` in a text fence."""
    start, end = readme_text.index(BEGIN) + len(BEGIN), readme_text.index(END)
    return f"{readme_text[:start]}\n```text\n{output}\n```\n{readme_text[end:]}"


def ranked_rows(printed: str, metric: str = "lead") -> list[DemoRow]:
    """The ranked rows of a printed leaderboard: rank, model name and the ``metric`` column as printed.

    The header row names the columns; a ranked row starts with its rank and the model's name, and its cells
    follow in the header's order (single words, as ``lead-hub rank`` prints them: names are never wrapped); the
    table ends at the first blank line after its header (the models' notes follow it)."""
    lines = printed.splitlines()
    start = next(index for index, line in enumerate(lines) if line.split()[:2] == ["rank", "model"])
    header = lines[start].split()
    column = header.index(metric)
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break  # the table ends at its first blank line; notes follow
        match = _ROW.match(line)
        if match:
            cells = [match.group(1), match.group(2), *match.group(3).split()]
            rows.append(DemoRow(int(cells[0]), cells[1], cells[column]))
    return rows


def refresh_demo_block() -> None:
    output = run_demo_command()
    if not ranked_rows(output):
        raise RuntimeError(f"no ranked row in the output of {' '.join(DEMO_COMMAND)}:\n{output}")
    README.write_text(with_demo_block(README.read_text(encoding="utf-8"), output), encoding="utf-8")
    print(f"README.md: demo output rewritten\n{output}")


def refresh_screenshot() -> None:
    environment = {**os.environ, "LEAD_HUB_UPDATE_SCREENSHOT": "1", "LEAD_HUB_REQUIRE_BROWSER": "1"}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_space_browser.py", "-k", SCREENSHOT_TEST],
                   cwd=REPOSITORY_ROOT, env=environment, check=True)
    print("space/screenshot.png redrawn")


def refresh_space_screenshots() -> list[Path]:
    """Run the browser tests of :data:`SPACE_SCREENSHOT_TESTS` at both widths and write their screenshots under
    :data:`SCREENSHOT_DIR` (see the module docstring); return the paths written."""
    with tempfile.TemporaryDirectory(prefix="lead_hub_space_screenshots_") as folder:
        environment = {**os.environ, "LEAD_HUB_SCREENSHOT_DIR": folder, "LEAD_HUB_REQUIRE_BROWSER": "1"}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_space_browser.py", "-k",
                        " or ".join(SPACE_SCREENSHOT_TESTS.values())], cwd=REPOSITORY_ROOT, env=environment,
                       check=True)
        missing = [name for name in SPACE_SCREENSHOTS if not (Path(folder) / name).is_file()]
        if missing:
            raise RuntimeError(f"the browser tests left no {', '.join(missing)}")
        SCREENSHOT_DIR.mkdir(exist_ok=True)
        written = [compact_png(Path(folder) / name, SCREENSHOT_DIR / name) for name in SPACE_SCREENSHOTS]
    for path in written:
        print(f"{path.relative_to(REPOSITORY_ROOT)}: {path.stat().st_size:,} bytes")
    return written


def compact_png(source: Path, destination: Path) -> Path:
    """``source`` written to ``destination`` as an optimised 256-colour PNG, checked under
    :data:`MAX_SCREENSHOT_BYTES`: a page of flat colours and text loses nothing visible."""
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(destination, optimize=True)
    if destination.stat().st_size > MAX_SCREENSHOT_BYTES:
        raise RuntimeError(f"{destination} is {destination.stat().st_size:,} bytes, more than "
                           f"{MAX_SCREENSHOT_BYTES:,}")
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", action="store_true",
                        help="also redraw space/screenshot.png and space/screenshots/ with the Space's browser tests")
    parser.add_argument("--screenshots-only", action="store_true",
                        help="redraw the Space's screenshots only, leaving the README's demo block as it is")
    arguments = parser.parse_args()
    if not arguments.screenshots_only:
        refresh_demo_block()
    if arguments.screenshot or arguments.screenshots_only:
        refresh_screenshot()
        refresh_space_screenshots()


if __name__ == "__main__":
    main()
