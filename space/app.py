"""The lead_hub Gradio Space: rank pretrained vision models for your images before fine-tuning any of them.

A thin page over :func:`lead_hub.ranking.rank`, the function behind ``lead-hub rank``: the defaults rank the
embedded demo zoo on the embedded EuroSAT sample at 64 px, offline, with the command line's default metrics and
sample (the status names those a ranking took, and the rule that chose them). The form and the streaming are in
:mod:`ranking_job`, publishing to the Hub in :mod:`hub_publish`.

Run locally with ``python space/app.py`` (http://127.0.0.1:7860). Environment: ``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT`` (Gradio's own), ``LEAD_HUB_SPACE_CACHE_DIR`` (a feature cache; unset: none, so a public
Space keeps nothing of its visitors' data).
"""

import html
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pandas as pd
from gradio.utils import get_space

from hub_publish import PublishError, choose_token, publish
from lead_hub import metrics as metric_registry
from lead_hub.leaderboard import Leaderboard, display_cell, short_name
from lead_hub.public_names import redact_paths
from lead_hub.ranking import DEFAULT_METRICS, DEFAULT_SAMPLES_PER_CLASS, DEMO_DATASET
from ranking_job import (
    DATASET_FROM_HUB,
    DATASET_FROM_UPLOAD,
    MODELS_FROM_IDS,
    MODELS_FROM_ZOO,
    OWN_PREPROCESSING,
    RankingRequest,
    SpaceLimits,
    offered_zoos,
    stream_ranking,
)
from visitor_messages import ranking_failure

TITLE = "lead_hub: which pretrained model should you fine-tune?"
IMAGE_SIZES = [("each model's own preprocessing", OWN_PREPROCESSING), ("32 px", 32), ("64 px", 64),
               ("96 px", 96), ("128 px", 128), ("224 px", 224)]
TABLE_COLUMNS = ["rank", "model", "score", "parameters", "pareto", "notes"]
IDLE_STATUS = "Press **Rank models** to rank the demo zoo on the demo data."
RUNNING_STATUS = "Ranking: the table fills in as each model is scored."
STOPPING_STATUS = "**Stopping:** the model in progress is being scored; the table, the chart and the files of the " \
                  "models scored by then follow."
FAILURE_MARK = "Not ranked:"
_RANKING_ENDED_JS = """(...values) => {
    const status = document.querySelector('#ranking-status');
    status.scrollIntoView({block: 'nearest'});
    status.dataset.rankingsEnded = String(Number(status.dataset.rankingsEnded || 0) + 1);
    return values;
}"""
"""Run in the browser when a ranking has ended, whichever way: brings the status line into view (on a phone it is
below the form) and counts the ended rankings on it (``data-rankings-ended``), so that a script driving the page
tells this result from the last one without watching timings; the event's inputs pass on unchanged."""
"""The status line's start after a failed ranking; the sentence that follows says why and what to do."""
PAGE_CSS = """
/* The status line is where an error is told: Gradio's red Error badge would cover its text. */
#ranking-status .error, #publish-status .error { display: none !important; }
/* The table in the page's proportional font: rank, model and the first score fit a phone's width, the rest
   scrolls sideways. */
#leaderboard-table * { font-family: var(--font) !important; }
@media (max-width: 640px) { #leaderboard-table .cell-wrap, #leaderboard-table .cell-wrap * { font-size: 13px; } }
/* Compact rows and, under the result's sentence, the defaults and warnings in a smaller font: with three score
   columns and a tie warning, the whole chart stays in view at 1366×900. */
#leaderboard-table .cell-wrap, #leaderboard-table .virtual-row { min-height: 28px !important; }
#leaderboard-table .cell-wrap { padding-top: 3px !important; padding-bottom: 3px !important; }
#ranking-status p + p { font-size: 13px; line-height: 1.4; }
/* The chart fits the results column; on a phone it keeps legible labels: it scrolls sideways instead of shrinking. */
#leaderboard-chart img { max-width: 100%; height: auto; }
@media (max-width: 640px) {
  #leaderboard-chart .image-container, #leaderboard-chart .image-frame { overflow-x: auto; justify-content: start; }
  #leaderboard-chart img { min-width: 820px; max-width: none; }
}
"""
"""The table's columns before a ranking (after one, ``score`` becomes one column per metric)."""
_INTRO = """# lead_hub: which pretrained model should you fine-tune?
Rank candidate models on a sample of **your** images with **LEAD** (CVPR 2024) and the classic transferability
metrics, before fine-tuning any. The defaults rank six small demo models on 300 EuroSAT satellite tiles: press
**Rank models**. For your data, upload a `.zip` of class folders (`<class>/<image>.jpg`) or name a Hub dataset."""
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")
EXAMPLE_HUB_DATASET = "uoft-cs/cifar10"
EXAMPLE_MODEL_IDS = "timm/resnet18.a1_in1k\nfacebook/dinov2-small"


def build_demo(limits: SpaceLimits = SpaceLimits(), *, cache_dir: Path | None = None,
               in_space: bool | None = None) -> gr.Blocks:
    """The Space's page. ``in_space`` (default: whether ``SPACE_ID`` is set) shows "Sign in with Hugging Face"
    for publishing; run locally, a password field takes a token instead.

    The form's essentials (dataset, models, the metric to rank by, **Rank models** and a smaller **Stop**, enabled
    only while a ranking runs) come first, so they fit a laptop screen; the other settings sit in a closed
    accordion. The results column holds the status line, the table and, once a ranking has ended, the chart and
    the files to download (CSV, and parquet for ``lead-hub push``), so that the chart is in view at 1366×900. While
    a ranking runs, its progress is drawn on the status line only: the table fills in model by model. **Stop**
    ends the ranking after the model in progress and offers the chart and files of the models scored by then."""
    in_space = get_space() is not None if in_space is None else in_space
    metric_names = metric_registry.available()
    stop_signals: dict[str, threading.Event] = {}
    """The Stop button's signal of each browser session's ranking, by Gradio's session hash."""
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_INTRO)
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                with gr.Row():
                    dataset_from = gr.Radio([DATASET_FROM_UPLOAD, DATASET_FROM_HUB], value=DATASET_FROM_UPLOAD,
                                            label="Dataset from", min_width=150)
                    models_from = gr.Radio([MODELS_FROM_ZOO, MODELS_FROM_IDS], value=MODELS_FROM_ZOO,
                                           label="Models from", min_width=150)
                upload = gr.File(value=str(DEMO_DATASET), file_types=[".zip"], label="Zip of class folders",
                                 elem_id="dataset-zip", height=110)
                hub_dataset = gr.Textbox("", label="Hub dataset id",
                                         placeholder=f"owner/name, e.g. {EXAMPLE_HUB_DATASET}", visible=False)
                zoo = gr.Dropdown(offered_zoos(), value="demo", label="Zoo")
                model_ids = gr.Textbox("", label="Model ids (Hub or timm, one per line)", lines=3, visible=False,
                                       placeholder=EXAMPLE_MODEL_IDS)
                primary_metric = gr.Dropdown(metric_names, value=DEFAULT_METRICS[0], label="Rank by",
                                             elem_id="primary-metric")
                metric_note = gr.Markdown(metric_description(DEFAULT_METRICS[0]), elem_id="metric-description")
                with gr.Row(equal_height=True):
                    run = gr.Button("Rank models", variant="primary", elem_id="rank-button", scale=3, min_width=120)
                    stop = gr.Button("Stop", variant="secondary", size="sm", elem_id="stop-button", scale=1,
                                     min_width=70, interactive=False)
                with gr.Accordion("More settings", open=False, elem_id="more-settings"):
                    # The command line's defaults: the benchmark's best peer that ranks, ticked beside LEAD.
                    other_metrics = gr.CheckboxGroup(_other_metric_choices(DEFAULT_METRICS[0]),
                                                     value=list(DEFAULT_METRICS[1:]), label="Also score with",
                                                     elem_id="other-metrics")
                    samples_per_class = gr.Slider(2, limits.max_samples_per_class, value=DEFAULT_SAMPLES_PER_CLASS,
                                                  step=1, label="Samples per class", elem_id="samples-per-class")
                    image_size = gr.Dropdown(IMAGE_SIZES, value=64, label="Image size")
                    split = gr.Textbox(value="train", label="Split")
                    metric_options = gr.Textbox("", lines=2, elem_id="metric-options",
                                                label="Metric options (METRIC.KEY=VALUE, one per line)",
                                                placeholder="lead.ntk=full   (LEAD's NTK of the whole network)")
                    gr.Markdown(all_metric_descriptions())
            with gr.Column(scale=3, min_width=300):
                status = gr.Markdown(IDLE_STATUS, label="Status", elem_id="ranking-status", min_height=64)
                # No wrapping: on a phone the table scrolls sideways, rank, model and first score in view.
                table = gr.Dataframe(pd.DataFrame(columns=TABLE_COLUMNS), label="Leaderboard (best first)",
                                     interactive=False, wrap=False, max_height=420,
                                     elem_id="leaderboard-table")
                # The chart and the files appear with a result: no empty boxes before a ranking.
                chart = gr.Image(label="Scores and the score-versus-size Pareto front", type="filepath",
                                 elem_id="leaderboard-chart", visible=False, buttons=["fullscreen", "download"],
                                 show_label=False,  # the label would cover the chart's title
                                 interactive=False)  # an input of the ending event, never a visitor's upload
                files = gr.File(label="Download: CSV (spreadsheets), parquet with the run's provenance (lead-hub "
                                      "push), per-class parquet", file_count="multiple", elem_id="leaderboard-files",
                                visible=False, interactive=False)
        gr.Examples([[DATASET_FROM_UPLOAD, str(DEMO_DATASET), "", MODELS_FROM_ZOO, "demo", "", "lead"],
                     [DATASET_FROM_HUB, None, EXAMPLE_HUB_DATASET, MODELS_FROM_IDS, "demo", EXAMPLE_MODEL_IDS,
                      "logme"]],
                    [dataset_from, upload, hub_dataset, models_from, zoo, model_ids, primary_metric],
                    label="Examples: the demo, or a Hub dataset with two Hub models (needs the Hub)",
                    example_labels=["demo zip, demo zoo, LEAD", f"{EXAMPLE_HUB_DATASET}, two Hub models, LogME"])
        board = gr.State(None)
        with gr.Accordion("Publish the leaderboard to the Hugging Face Hub", open=False):
            gr.Markdown("Merges this ranking into a dataset repository of yours (created when missing), with a "
                        "dataset card and the provenance of the run.")
            if in_space:
                gr.LoginButton()
                token = gr.Textbox(visible=False)
            else:
                token = gr.Textbox(label="Hub token with write access (blank: this machine's HF_TOKEN or login)",
                                   type="password")
            repo_id = gr.Textbox("", label="Dataset repository", placeholder="your-name/vision-leaderboard")
            push = gr.Button("Publish")
            push_status = gr.Markdown(label="Publishing status", elem_id="publish-status")

        dataset_from.change(lambda choice: (gr.update(visible=choice == DATASET_FROM_UPLOAD),
                                            gr.update(visible=choice == DATASET_FROM_HUB)),
                            dataset_from, [upload, hub_dataset], api_visibility="private")
        models_from.change(lambda choice: (gr.update(visible=choice == MODELS_FROM_ZOO),
                                           gr.update(visible=choice == MODELS_FROM_IDS)),
                           models_from, [zoo, model_ids], api_visibility="private")
        primary_metric.change(lambda primary, others: (
            metric_description(primary),
            gr.update(choices=_other_metric_choices(primary), value=[name for name in others if name != primary])),
            [primary_metric, other_metrics], [metric_note, other_metrics], api_visibility="private")

        def begin(request: gr.Request) -> tuple:
            """Before the queued ranking: a fresh stop signal for this session, Rank off and Stop on, the last
            ranking's chart and files hidden."""
            stop_signals[request.session_hash] = threading.Event()
            return (gr.update(interactive=False), gr.update(interactive=True), gr.update(visible=False),
                    gr.update(visible=False))

        def rank_models(dataset_from: str, upload: str | None, hub_dataset: str, split: str, models_from: str,
                        zoo: str, model_ids: str, primary_metric: str, other_metrics: list[str],
                        samples_per_class: float, image_size: int, metric_options: str = "",
                        request: gr.Request = None,
                        progress=gr.Progress(track_tqdm=True)) -> Iterator[tuple]:
            ranking_request = RankingRequest(dataset_from, upload, hub_dataset, split, models_from, zoo, model_ids,
                                             primary_metric, tuple(other_metrics or ()), int(samples_per_class),
                                             int(image_size), tuple((metric_options or "").split()))
            session = request.session_hash if request is not None else None
            stop_signal = stop_signals.setdefault(session, threading.Event())
            # Gradio copies each yielded file into its own cache before asking for the next update, so the
            # results folder can go once the last update is out.
            with tempfile.TemporaryDirectory(prefix="lead_hub_space_results_") as results_dir:
                try:
                    # A new ranking starts without the last one's rows, chart and files.
                    yield RUNNING_STATUS, display_table(None), None, None, gr.skip()
                    for update in stream_ranking(ranking_request, results_dir=Path(results_dir), limits=limits,
                                                 cache_dir=cache_dir, stop=stop_signal,
                                                 progress=lambda fraction, text: progress(fraction,
                                                                                          desc=redact_paths(text))):
                        yield (as_markdown(update.status), display_table(update.board),
                               None if update.chart is None else str(update.chart),
                               [str(path) for path in update.files] or None, update.board)
                except Exception as error:
                    message = ranking_failure(error)
                    # The status line says what happened, in one sentence, and stays: no pop-up piles up.
                    yield (f"**{FAILURE_MARK}** {as_markdown(message)}", gr.skip(), gr.skip(), gr.skip(), gr.skip())
                    raise gr.Error(html.escape(message, quote=False), visible=False,
                                   print_exception=not isinstance(error, (ValueError, LookupError))) from error
                finally:
                    stop_signals.pop(session, None)

        def end(shown_chart: str | None, shown_files: list[str] | None) -> tuple:
            """After the ranking: Rank on and Stop off; the chart and the files shown when the ranking gave them
            (the ranking sends plain values, so that an API client gets paths, not page updates)."""
            return (gr.update(interactive=True), gr.update(interactive=False), gr.update(visible=bool(shown_chart)),
                    gr.update(visible=bool(shown_files)))

        ranking = run.click(begin, None, [run, stop, chart, files], queue=False, api_visibility="private").then(
            rank_models, [dataset_from, upload, hub_dataset, split, models_from, zoo, model_ids, primary_metric,
                          other_metrics, samples_per_class, image_size, metric_options],
            [status, table, chart, files, board], api_name="rank", concurrency_limit=1, concurrency_id="ranking",
            show_progress_on=[status])
        # Whichever way the ranking ended, the buttons are reset and its status is brought into view. Two
        # listeners: Gradio's frontend runs a .then() listener after a success only.
        for after in (ranking.then, ranking.failure):
            after(end, [chart, files], [run, stop, chart, files], queue=False, api_visibility="private",
                  js=_RANKING_ENDED_JS)

        def stop_ranking(request: gr.Request) -> tuple:
            signal = stop_signals.get(request.session_hash)
            if signal is None:
                return gr.skip(), gr.update(interactive=False)
            signal.set()
            return STOPPING_STATUS, gr.update(interactive=False)

        stop.click(stop_ranking, None, [status, stop], api_visibility="private", queue=False)
        # A visitor who leaves the page stops the ranking too: nothing would show its result.
        def stop_on_leaving(request: gr.Request) -> None:
            signal = stop_signals.get(request.session_hash)
            if signal is not None:
                signal.set()

        demo.unload(stop_on_leaving)

        def publish_board(board: Leaderboard | None, repo_id: str, token: str,
                          oauth_token: gr.OAuthToken | None) -> Iterator[str]:
            try:
                chosen = choose_token(in_space=in_space, typed_token=token,
                                      oauth_token=None if oauth_token is None else oauth_token.token)
                yield publish(board, repo_id, chosen)
            except PublishError as error:
                # As for a ranking: the sentence on the page, the error (without a pop-up) for API clients.
                yield f"**Not published:** {as_markdown(str(error))}"
                raise gr.Error(html.escape(str(error), quote=False), visible=False, print_exception=False) from None

        push.click(publish_board, [board, repo_id, token], push_status, api_name="publish")
    return demo


def metric_description(name: str) -> str:
    """One line under "Rank by": what the metric computes and what it needs (from the metric registry)."""
    row = _metric_rows()[name]
    needs = "" if row["needs"] == "features only" else f" Needs {row['needs']}: headless models get no score."
    return f"**{name}**: {as_markdown(row['summary'])}.{needs}"


def all_metric_descriptions() -> str:
    """A markdown list of every metric with its one-line summary, for the settings accordion."""
    return "\n".join(f"- **{name}**: {as_markdown(row['summary'])}" for name, row in _metric_rows().items())


def _metric_rows() -> dict[str, dict]:
    return {row["name"]: row for row in metric_registry.describe()}


def _other_metric_choices(primary: str) -> list[str]:
    """The metrics offered as "also score with": every metric but the one ranked by."""
    return [name for name in metric_registry.available() if name != primary]


def as_markdown(text: str) -> str:
    """``text`` shown literally in a Markdown component: absolute server paths reduced to their last component,
    HTML and Markdown syntax escaped (a zip named ``<img src=x>.zip`` or ``[a](b).zip`` shows as typed)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(redact_paths(text), quote=False))


def display_table(board: Leaderboard | None) -> pd.DataFrame:
    """The leaderboard as shown on the page: rank, model (short name, as in the chart), scores to 4 significant
    digits, size, Pareto flag and notes, formatted as ``lead-hub rank`` prints them (the CSV keeps full ids and
    full precision); the empty table of :data:`TABLE_COLUMNS` without a board."""
    if board is None:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    columns = ["rank", "model_id", *board.metrics, "num_params", "pareto", "notes"]
    cells = {column: [display_cell(column, value) for value in board.table[column]] for column in columns}
    cells["model_id"] = [short_name(model_id) for model_id in board.table["model_id"]]
    cells["notes"] = [redact_paths(note) for note in cells["notes"]]
    return pd.DataFrame(cells).rename(columns={"model_id": "model", "num_params": "parameters"})


def launch_options(limits: SpaceLimits) -> dict:
    """Keyword arguments of ``launch`` that every run of the Space needs: Gradio refuses uploads above the
    Space's limit before they reach the app, no run's inputs (a typed token among them) are kept in the
    browser's run history, and the page's style (:data:`PAGE_CSS`, :func:`page_theme`) is applied."""
    return {"max_file_size": limits.max_upload_bytes, "run_history": False, "footer_links": ["api", "gradio"],
            "css": PAGE_CSS, "theme": page_theme()}


def page_theme() -> gr.themes.Base:
    """Gradio's default theme with its font's regular and bold faces only: the semibold file Gradio ships for
    Source Sans Pro holds too few glyphs, so semibold and bold words (headings, buttons, **bold**) fell back to
    another font; without a semibold face the browser draws them with the complete bold one."""
    font = gr.themes.LocalFont("Source Sans Pro", weights=(400, 700))
    return gr.themes.Default(font=[font, "ui-sans-serif", "system-ui", "sans-serif"])


def main() -> None:
    limits = SpaceLimits()
    cache_dir = os.environ.get("LEAD_HUB_SPACE_CACHE_DIR")
    demo = build_demo(limits, cache_dir=None if cache_dir is None else Path(cache_dir))
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(**launch_options(limits))


if __name__ == "__main__":
    main()
