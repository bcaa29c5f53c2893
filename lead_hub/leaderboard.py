"""The ranked result of scoring candidate models on one dataset: a table with its provenance.

``Leaderboard.table`` has one row per model, best first by the primary metric (the first metric asked for):

===================  =============================================================================================
``rank``             1 = predicted to fine-tune best; equal scores share a rank; empty where the primary score is
                     NaN
``model_id``         the candidate as given (zoo id, Hub id, ``local-dir:`` folder)
``model_revision``   Hub commit sha, or ``sha256:<digest>`` of a local folder's files
``<metric>``         one column per metric, named by the metric (``lead``, ``logme``, ...); higher is better; NaN
                     where the metric is not applicable to the model or failed (``notes`` says which)
``feature_dim``      width D of the pooled features the metrics saw
``num_params``       true parameter count of the backbone
``extract_seconds``  wall time to get the features: loading and running the model, or reading the cache
``score_seconds``    wall time of all metrics on this model (a set-relative metric's time is split evenly)
``process``          the process that extracted the model's features (0 unless ``rank`` ran under ``accelerate
                     launch``; the provenance's ``processes`` says how many there were)
``pareto``           True if no other model is at most as large and at least as good on the primary metric, and
                     strictly one of the two (the score-versus-size Pareto front)
``notes``            why a score is missing, or other remarks; empty otherwise
===================  =============================================================================================

``provenance`` is a JSON-ready dict: dataset, split, revision, samples, seed, metrics and their options, image size,
library versions. ``per_class`` (optional) holds per-class diagnostics, one row per (model, class).

Formats: CSV (table only: CSV has nowhere to keep metadata), JSON (table, provenance and per-class diagnostics),
parquet (provenance in the schema metadata), markdown (a pipe table, the provenance as a list and, for loading
back, as JSON in an HTML comment; numbers to 6 significant digits) and a PNG chart. ``Leaderboard.load`` reads
any of the first four.
"""

from __future__ import annotations

import html
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich import box
from rich.console import Console, ConsoleOptions
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

FIXED_COLUMNS_BEFORE = ("rank", "model_id", "model_revision")
FIXED_COLUMNS_AFTER = ("feature_dim", "num_params", "extract_seconds", "score_seconds", "process", "pareto",
                       "notes")
FORMATS = ("csv", "json", "parquet", "md", "png")
_INTEGER_COLUMNS = ("rank", "feature_dim", "num_params", "process")
_TEXT_COLUMNS = ("model_id", "model_revision", "notes")
_PARQUET_KEY = b"lead_hub.provenance"
_MARKDOWN_MARK = "lead_hub provenance:"
_JSON_FORMAT = "lead_hub.leaderboard/1"
READABLE_SUFFIXES = (".csv", ".json", ".parquet", ".md")
"""The file extensions :meth:`Leaderboard.load` reads."""


@dataclass(repr=False)
class Leaderboard:
    """A ranked table of models with the provenance of the run that produced it (see the module docstring).

    :func:`lead_hub.rank` returns one; :meth:`load` and :meth:`from_hub` read one back. Printed (or shown in a
    notebook) it is the console table; :meth:`plot` charts it, :meth:`save` writes it, :meth:`push_to_hub`
    publishes it.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per model, best first: ``rank``, ``model_id``, one column per metric, size, times, ``pareto``,
        ``notes`` (see the module docstring).
    provenance : dict
        JSON-ready settings of the run: ``metrics`` (primary first), dataset, sample, versions, ...
    per_class : pandas.DataFrame, optional
        Per-class diagnostics (``rank(..., per_class=True)``), one row per (model, metric, class).

    Examples
    --------
    >>> from lead_hub import rank, Leaderboard
    >>> board = rank("demo", "demo", image_size=64)            # doctest: +SKIP
    >>> board.best_model, board.metrics                         # doctest: +SKIP
    >>> board.save("runs/")                                     # doctest: +SKIP
    >>> Leaderboard.load("runs/leaderboard.parquet").table      # doctest: +SKIP
    """

    table: pd.DataFrame
    provenance: dict
    per_class: pd.DataFrame | None = None

    @classmethod
    def from_rows(cls, rows: list[dict], provenance: dict, per_class: pd.DataFrame | None = None) -> "Leaderboard":
        """Rank ``rows`` (dicts with ``model_id``, one key per metric of ``provenance["metrics"]`` and the other
        columns) by ``provenance["metrics"][0]``, higher first, NaN last; add ``rank`` and ``pareto``."""
        metrics = list(provenance["metrics"])
        columns = [*FIXED_COLUMNS_BEFORE, *metrics, *FIXED_COLUMNS_AFTER]
        table = pd.DataFrame(rows, columns=[column for column in columns if column not in ("rank", "pareto")])
        table = _typed(table, metrics)
        primary = metrics[0]
        table = table.sort_values(primary, ascending=False, na_position="last", kind="stable").reset_index(drop=True)
        table["rank"] = table[primary].rank(method="min", ascending=False).astype("Int64")
        table["pareto"] = pareto_front(table[primary].to_numpy(float), table["num_params"].to_numpy(float))
        return cls(table[columns], dict(provenance), per_class)

    @property
    def metrics(self) -> list[str]:
        """The metric columns, primary first."""
        return list(self.provenance["metrics"])

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def best_model(self) -> str | None:
        """The model ranked first, or None when no model has a primary score."""
        ranked = self.table.dropna(subset=[self.primary_metric])
        return None if ranked.empty else str(ranked.iloc[0]["model_id"])

    # ---- writing ---------------------------------------------------------------------------------------------

    def save(self, directory: str | Path, *, formats: tuple[str, ...] = FORMATS,
             stem: str = "leaderboard") -> list[Path]:
        """Write the leaderboard in several formats at once.

        Parameters
        ----------
        directory : str or Path
            The folder (created when missing).
        formats : tuple of str
            Among csv, json, parquet, md and png (default: all five).
        stem : str
            The file name without extension.

        Returns
        -------
        list of Path
            ``<directory>/<stem>.<format>`` for each format, in the order given.

        Examples
        --------
        >>> board.save("runs/", formats=("parquet", "png"))   # doctest: +SKIP
        [PosixPath('runs/leaderboard.parquet'), PosixPath('runs/leaderboard.png')]
        """
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown leaderboard formats {sorted(unknown)}; choose among {', '.join(FORMATS)}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        writers = {"csv": self.to_csv, "json": self.to_json, "parquet": self.to_parquet, "md": self.to_markdown,
                   "png": self.plot}
        paths = []
        for extension in formats:
            path = directory / f"{stem}.{extension}"
            writers[extension](path)
            paths.append(path)
        return paths

    def to_csv(self, path: str | Path) -> None:
        """The table as CSV (no provenance: keep the JSON or parquet file for that)."""
        self.table.to_csv(path, index=False)

    def to_json(self, path: str | Path) -> None:
        """``{"format", "provenance", "table": [rows], "per_class": [rows] | null}``; NaN becomes null."""
        document = {
            "format": _JSON_FORMAT,
            "provenance": self.provenance,
            "table": _records(self.table),
            "per_class": None if self.per_class is None else _records(self.per_class),
        }
        Path(path).write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")

    def to_parquet(self, path: str | Path) -> None:
        """The table as parquet with the provenance as JSON under the schema metadata key ``lead_hub.provenance``."""
        arrow = pa.Table.from_pandas(self.table, preserve_index=False)
        metadata = {**(arrow.schema.metadata or {}), _PARQUET_KEY: json.dumps(self.provenance).encode()}
        pq.write_table(arrow.replace_schema_metadata(metadata), path)

    def to_markdown(self, path: str | Path | None = None) -> str:
        """A markdown report: the table, then the provenance; written to ``path`` when given."""
        lines = [markdown_table(self.table), "", "Provenance:", ""]
        lines += [f"- **{key}**: {_inline(value)}" for key, value in self.provenance.items()]
        lines += ["", f"<!-- {_MARKDOWN_MARK} {json.dumps(self.provenance, allow_nan=False)} -->", ""]
        text = "\n".join(lines)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def plot(self, path: str | Path | None = None):
        """Chart the ranking: the primary score per model as a dot plot (best on top) and score versus size with
        the Pareto front (:mod:`lead_hub.chart`).

        Parameters
        ----------
        path : str or Path, optional
            Where to write the chart as a PNG; None (the default) writes nothing.

        Returns
        -------
        matplotlib.figure.Figure
            The chart. A notebook shows it inline; ``figure.savefig(...)`` writes it in any format.

        Examples
        --------
        >>> board = rank("demo", "demo", image_size=64)          # doctest: +SKIP
        >>> board.plot()                                          # doctest: +SKIP
        >>> board.plot("runs/chart.png")                          # doctest: +SKIP
        """
        from lead_hub.chart import leaderboard_figure

        title = f"{self.provenance.get('dataset', '')} [{self.provenance.get('split', '')}]"
        figure = leaderboard_figure(self.table, self.primary_metric, display_names(self.table["model_id"]), title)
        if path is not None:
            figure.savefig(path, dpi=110)
        return figure

    def push_to_hub(self, repo_id: str, *, create_pr: bool = False, private: bool = False,
                    commit_message: str | None = None, license: str = "apache-2.0", top_k: int = 10,
                    token: str | None = None):
        """Publish this ranking to the Hub dataset repository ``repo_id``, merged with the rankings there.

        Rows merge by key (dataset, sample, settings and model): publishing the same ranking again replaces its
        own rows and never duplicates them. Absolute local paths are never published. See
        :func:`lead_hub.hub.push_leaderboard` and ``lead-hub push``.

        Parameters
        ----------
        repo_id : str
            ``owner/name`` of a dataset repository; created (``private`` applies then) when it does not exist.
        create_pr : bool
            Propose the change as a pull request against ``main`` instead of committing it.
        private : bool
            Create the repository private.
        commit_message : str, optional
            The commit title (default: names the datasets and the number of rows).
        license : str
            The license of the dataset card (default: apache-2.0).
        top_k : int
            Models shown per ranking in the dataset card (the parquet table keeps every row).
        token : str, optional
            A Hub token; by default ``HF_TOKEN`` or your ``hf auth login``. Never stored or printed.

        Returns
        -------
        lead_hub.hub.PushResult
            The commit (or pull request) made and how the rows merged.

        Raises
        ------
        lead_hub.hub.HubError
            With a message naming the repository and the fix (no token, offline, conflict, ...).

        Examples
        --------
        >>> board = rank("demo", "demo", image_size=64)                  # doctest: +SKIP
        >>> board.push_to_hub("my-user/vision-leaderboard").commit_url    # doctest: +SKIP
        """
        from lead_hub.hub import push_leaderboard

        return push_leaderboard(self.table, self.provenance, repo_id, create_pr=create_pr, private=private,
                                commit_message=commit_message, license=license, top_k=top_k, token=token)

    def to_rich(self, width: int | None = None) -> Table:
        """A rich console table: rank, short model name, the scores, size, times and Pareto flag; the notes as a
        caption below. Model names are never cut. When ``width`` is too narrow for every column, the times are left
        out first, then the columns are packed closer, then the size and the Pareto flag go, and only then the
        secondary scores (the last asked for first), which the caption names so that none goes missing unsaid."""
        names = display_names(self.table["model_id"])
        shown = ["rank", "model_id", *self.metrics, "num_params", "extract_seconds", "score_seconds", "pareto"]
        steps = ["score_seconds", "extract_seconds", "compact", "num_params", "pareto", *self.metrics[:0:-1]]
        compact, hidden = False, []
        while True:
            table = self._rich_table(shown, names, compact, hidden, width)
            if width is None or not steps or _natural_width(table) <= width:
                return table
            step = steps.pop(0)
            if step == "compact":
                compact = True
                continue
            shown.remove(step)
            if step in self.metrics:
                hidden.insert(0, step)

    def _rich_table(self, shown: list[str], names: dict[str, str], compact: bool = False,
                    hidden: list[str] = (), width: int | None = None) -> Table:
        noted = self.table[self.table["notes"].ne("")]
        caption = [f"{names[row.model_id]}: {row.notes}" for row in noted.itertuples()]
        if hidden:
            caption.insert(0, f"not shown at {width} columns: {', '.join(hidden)} (widen the terminal, or save the "
                              "leaderboard: its files hold every score)")
        table = Table(title=escape(self.title), caption=escape("\n".join(caption)), caption_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=not compact,
                      padding=(0, 0) if compact else (0, 1))
        headers = {"model_id": "model", "num_params": "params", "extract_seconds": "extract s",
                   "score_seconds": "score s"}
        for column in shown:
            table.add_column(headers.get(column, column), no_wrap=True,
                             justify="left" if column == "model_id" else "right")
        for _, row in self.table.iterrows():
            cells = [names[row["model_id"]] if column == "model_id" else display_cell(column, row[column])
                     for column in shown]
            table.add_row(*(escape(cell) for cell in cells))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        """The table fitted to the console's width, then :attr:`warnings`, one per line."""
        yield self.to_rich(options.max_width)
        for warning in self.warnings:
            yield Text(f"warning: {warning}", style="yellow")

    def __str__(self) -> str:
        """The console table and warnings as plain text, as wide as the terminal (120 columns when there is none)."""
        console = Console(width=shutil.get_terminal_size((120, 24)).columns, record=True, file=io.StringIO(),
                          color_system=None)
        console.print(self)
        return console.export_text().rstrip() + "\n"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """An HTML table for notebooks: short model names (the full id as a tooltip), scores, size, notes, then
        the warnings. Every cell is escaped."""
        names = display_names(self.table["model_id"])
        columns = ["rank", "model_id", *self.metrics, "num_params", "pareto", "notes"]
        header = "".join(f"<th>{html.escape('model' if column == 'model_id' else column)}</th>" for column in columns)
        rows = []
        for _, row in self.table.iterrows():
            cells = []
            for column in columns:
                if column == "model_id":
                    cells.append(f'<td title="{html.escape(row[column])}">{html.escape(names[row[column]])}</td>')
                else:
                    cells.append(f"<td>{html.escape(display_cell(column, row[column]))}</td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        caption = f"{self.title}, ranked by {self.primary_metric}"
        warnings = "".join(f"<p><b>warning:</b> {html.escape(warning)}</p>" for warning in self.warnings)
        return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{header}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>{warnings}")

    @property
    def title(self) -> str:
        """``lead_hub leaderboard: <dataset> [<split>], <N> samples``; the parts the provenance lacks (a CSV file
        keeps none) are left out."""
        provenance = self.provenance
        title = "lead_hub leaderboard"
        if provenance.get("dataset"):
            title += f": {provenance['dataset']}" + (f" [{provenance['split']}]" if provenance.get("split") else "")
        if provenance.get("samples") is not None:
            title += f", {provenance['samples']} samples"
            if provenance.get("samples_per_class"):
                title += f" ({provenance['samples_per_class']} per class at most)"
        return title

    @property
    def warnings(self) -> list[str]:
        """Metrics that cannot rank these models: exact ties (saturation) and missing scores, each with the fix."""
        return ranking_warnings(self.table, self.metrics, self.provenance.get("samples"))

    # ---- reading ---------------------------------------------------------------------------------------------

    @classmethod
    def from_hub(cls, repo_id: str, *, dataset: str | None = None, revision: str | None = None,
                 token: str | None = None) -> "Leaderboard":
        """Read one ranking back from a leaderboard published on the Hub.

        A published leaderboard holds every ranking pushed to it (one per dataset, sample and settings); the one
        read is the only ranking there, or the only one of ``dataset``.

        Parameters
        ----------
        repo_id : str
            ``owner/name`` of the leaderboard's dataset repository.
        dataset : str, optional
            The dataset whose ranking to read, as the leaderboard names it (its ``dataset`` column); needed
            when the repository holds several rankings.
        revision : str, optional
            A branch, tag, commit or ``refs/pr/N`` (default: the head of ``main``).
        token : str, optional
            A Hub token for a private repository (default: ``HF_TOKEN`` or your login).

        Returns
        -------
        Leaderboard
            The ranking's rows, ranked as published, with the provenance of the run that produced them.

        Raises
        ------
        ValueError
            When several rankings match; the message lists them.
        lead_hub.hub.HubError
            When the repository cannot be read (missing, not a leaderboard, offline).

        Examples
        --------
        >>> board = Leaderboard.from_hub("my-user/vision-leaderboard", dataset="demo")   # doctest: +SKIP
        >>> board.best_model                                                           # doctest: +SKIP
        """
        from lead_hub.hub import read_leaderboard
        from lead_hub.hub_merge import RUN_KEY, row_keys

        published = read_leaderboard(repo_id, revision=revision, token=token)
        table = published.table
        if dataset is not None:
            table = table[table["dataset"].astype(str) == str(dataset)]
        rankings = row_keys(table, RUN_KEY) if not table.empty else pd.Series(dtype=object)
        if rankings.nunique() != 1:
            found = sorted({f"{row.dataset} [{row.split}]" for row in published.table.itertuples()})
            which = "no ranking" if rankings.empty else f"{rankings.nunique()} rankings"
            raise ValueError(f"{published.repo_id} holds {which}"
                             f"{f' of dataset {dataset!r}' if dataset is not None else ''}; it has rankings of "
                             f"{', '.join(found)}: pass dataset= to choose one")
        run = table["run_id"].mode().iloc[0] if "run_id" in table.columns else None
        provenance = dict(published.provenance_by_run.get(run) or {})
        if "metrics" not in provenance:
            provenance["metrics"] = json.loads(table["metric_settings"].iloc[0])["metrics"]
        columns = [column for column in (*FIXED_COLUMNS_BEFORE, *provenance["metrics"], *FIXED_COLUMNS_AFTER)
                   if column in table.columns and column not in ("rank", "pareto")]
        return cls.from_rows(table[columns].to_dict(orient="records"), provenance)

    @classmethod
    def load(cls, path: str | Path) -> "Leaderboard":
        """Read a leaderboard written by :meth:`save`.

        Parameters
        ----------
        path : str or Path
            A ``.csv``, ``.json``, ``.parquet`` or ``.md`` file, read by its extension. CSV keeps no provenance:
            the metrics are then the columns that are not fixed ones.

        Returns
        -------
        Leaderboard

        Examples
        --------
        >>> Leaderboard.load("runs/leaderboard.parquet").best_model   # doctest: +SKIP
        """
        path = Path(path)
        readers = {".csv": _read_csv, ".json": _read_json, ".parquet": _read_parquet, ".md": _read_markdown}
        if path.suffix not in READABLE_SUFFIXES:
            raise ValueError(f"cannot read a leaderboard from {path}: expected one of {', '.join(readers)}")
        table, provenance, per_class = readers[path.suffix](path)
        if "metrics" not in provenance:
            provenance = {**provenance, "metrics": _metric_columns(table)}
        return cls(_typed(table, provenance["metrics"]), provenance, per_class)


def pareto_front(scores: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Boolean mask of the models on the score-versus-size Pareto front.

    Model i is on the front unless some model j has ``size_j <= size_i`` and ``score_j >= score_i`` with at least
    one inequality strict. Models with a NaN score or size are never on the front (and dominate nothing).
    """
    scores = np.asarray(scores, dtype=float)
    sizes = np.asarray(sizes, dtype=float)
    valid = np.isfinite(scores) & np.isfinite(sizes)
    on_front = np.zeros(len(scores), dtype=bool)
    for index in np.flatnonzero(valid):
        others = valid & (sizes <= sizes[index]) & (scores >= scores[index])
        strictly = (sizes < sizes[index]) | (scores > scores[index])
        on_front[index] = not np.any(others & strictly)
    return on_front


def _typed(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The known columns cast to their types (integers nullable, text with empty strings for missing)."""
    table = table.copy()
    for column in table.columns:
        if column in _INTEGER_COLUMNS:
            table[column] = pd.to_numeric(table[column]).astype("Int64")
        elif column in _TEXT_COLUMNS:
            table[column] = table[column].astype(object).where(table[column].notna(), "").astype(str)
        elif column == "pareto":
            table[column] = table[column].map(lambda value: value in (True, "True", "true", 1)).astype(bool)
        elif column in metrics or column in ("extract_seconds", "score_seconds"):
            table[column] = pd.to_numeric(table[column]).astype(float)
    return table


def _metric_columns(table: pd.DataFrame) -> list[str]:
    fixed = set(FIXED_COLUMNS_BEFORE) | set(FIXED_COLUMNS_AFTER)
    return [column for column in table.columns if column not in fixed]


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: numpy and pandas scalars to Python, NaN and NA to None."""
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    return value


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict, None]:
    return pd.read_csv(path, keep_default_na=False, na_values=[""]), {}, None


def _read_json(path: Path) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("format") != _JSON_FORMAT:
        raise ValueError(f"{path} is not a lead_hub leaderboard (format {document.get('format')!r}, "
                         f"expected {_JSON_FORMAT!r})")
    per_class = None if document.get("per_class") is None else pd.DataFrame(document["per_class"])
    return pd.DataFrame(document["table"]), document["provenance"], per_class


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict, None]:
    arrow = pq.read_table(path)
    provenance = json.loads((arrow.schema.metadata or {}).get(_PARQUET_KEY, b"{}"))
    return arrow.to_pandas(), provenance, None


def _read_markdown(path: Path) -> tuple[pd.DataFrame, dict, None]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    if len(rows) < 2:
        raise ValueError(f"{path}: no markdown pipe table found")
    header, body = rows[0], rows[2:]
    table = pd.DataFrame(body, columns=header).replace({"": None, "nan": None})
    provenance = {}
    for line in lines:
        if line.startswith("<!--") and _MARKDOWN_MARK in line:
            provenance = json.loads(line.split(_MARKDOWN_MARK, 1)[1].rsplit("-->", 1)[0])
    return table, provenance, None


def markdown_table(table: pd.DataFrame, *, float_format: str = ".6g") -> str:
    """A markdown pipe table of ``table``: numeric columns right-aligned, floats as ``float_format``, NaN blank."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(table[column]) and column != "pareto" else "---"
                          for column in table.columns) + "|"
    body = ["| " + " | ".join(_markdown_cell(value, float_format) for value in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _markdown_cell(value, float_format: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return format(value, float_format)
    return str(value).replace("|", "\\|")


def _inline(value) -> str:
    return f"`{json.dumps(value)}`" if isinstance(value, (dict, list)) else str(value)


def display_cell(column: str, value) -> str:
    """How a leaderboard cell reads on a console or web page: sizes in millions, seconds to 0.1, "n/a" for NaN."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "" if column == "rank" else "n/a"
    if column == "num_params":
        return f"{int(value) / 1e6:.2f} M" if value >= 100_000 else f"{int(value):,}"
    if column.endswith("_seconds"):
        return f"{value:.1f}"
    if column == "pareto":
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def short_name(model_id: str) -> str:
    """The last path component of an id: ``local-dir:demo/models/x`` and ``hf-hub:timm/x`` both give ``x``."""
    return model_id.rsplit("/", 1)[-1].removeprefix("local-dir:").removeprefix("hf-hub:")


def display_names(model_ids) -> dict[str, str]:
    """A short, distinct name per model id for tables and charts: the last path component (:func:`short_name`),
    with as many parent components as it takes to tell apart ids that share it (``a/x`` and ``b/x``)."""
    model_ids = list(dict.fromkeys(str(model_id) for model_id in model_ids))
    parts = {model_id: model_id.removeprefix("local-dir:").removeprefix("hf-hub:").rstrip("/").split("/")
             for model_id in model_ids}
    depth = {model_id: 1 for model_id in model_ids}
    while True:
        names = {model_id: "/".join(parts[model_id][-depth[model_id]:]) for model_id in model_ids}
        clashing = [model_id for model_id in model_ids if list(names.values()).count(names[model_id]) > 1
                    and depth[model_id] < len(parts[model_id])]
        if not clashing:
            return names
        for model_id in clashing:
            depth[model_id] += 1


def tied_groups(scores: np.ndarray) -> list[np.ndarray]:
    """Boolean masks over ``scores``, one per group of two or more finite scores that are equal: within 1e-9
    relative (1e-12 absolute) of the group's first score. NaN scores belong to no group."""
    scores = np.asarray(scores, dtype=float)
    finite = np.isfinite(scores)
    grouped = ~finite
    groups = []
    for index in np.flatnonzero(finite):
        if grouped[index]:
            continue
        tied = finite & np.isclose(scores, scores[index], rtol=1e-9, atol=1e-12)
        grouped |= tied
        if tied.sum() >= 2:
            groups.append(tied)
    return groups


def ranking_warnings(table: pd.DataFrame, metrics: list[str], samples: int | None = None) -> list[str]:
    """One sentence per metric that does not order the models of ``table``, saying what to do instead.

    Two cases: several models with the same score (equal to 1e-9 relative: H-score's K−1, SFDA's and PED's 1.0
    when features have at least N − 1 dimensions for N samples), and models without a score (NaN: the metric
    failed, e.g. NLEEP with too few samples per class, or does not apply; the notes say which).
    """
    names = display_names(table["model_id"])
    warnings = []
    unscored = _unscored_models(table, metrics)
    if unscored.any():
        listed = ", ".join(names[model_id] for model_id in table["model_id"][unscored])
        warnings.append(f"no score for {int(unscored.sum())} of {len(table)} models ({listed}): they could not be "
                        "loaded or run; the notes say why.")
    for metric in metrics:
        if metric not in table.columns:
            continue
        scores = table[metric].to_numpy(float)
        finite = np.isfinite(scores)
        for tied in tied_groups(scores):
            index = int(np.flatnonzero(tied)[0])
            dims = pd.to_numeric(table["feature_dim"][tied]) if "feature_dim" in table.columns else None
            wide = samples is not None and dims is not None and bool(dims.notna().all() and (dims >= samples - 1).all())
            if wide:
                why = (f"their features have at least N − 1 dimensions for N = {samples} samples, where {metric} "
                       "saturates. Use more samples per class (more samples than feature dimensions) or another "
                       "metric (e.g. lead or logme) to tell them apart.")
            else:
                why = "equal scores do not order them. Compare them with another metric."
            tied_names = ", ".join(names[model_id] for model_id in table["model_id"][tied])
            warnings.append(f"{metric} cannot rank {int(tied.sum())} models that all score {scores[index]:.6g} "
                            f"({tied_names}): {why}")
        missing = ~finite & ~unscored
        if missing.any():
            listed = ", ".join(names[model_id] for model_id in table["model_id"][missing])
            warnings.append(f"{metric} has no score for {int(missing.sum())} of {len(scores)} models ({listed}): "
                            f"{_why_missing(metric, table['notes'][missing] if 'notes' in table.columns else [])}")
    return warnings


def _unscored_models(table: pd.DataFrame, metrics: list[str]) -> np.ndarray:
    """Models without any score: failed before a metric could run (not loaded, extraction failed)."""
    present = [metric for metric in metrics if metric in table.columns]
    if not present:
        return np.zeros(len(table), dtype=bool)
    return ~np.isfinite(table[present].to_numpy(float)).any(axis=1)


def _why_missing(metric: str, notes) -> str:
    """Advice for a metric's missing scores that fits their cause, read from the models' notes."""
    notes = [str(note) for note in notes]
    if notes and all(f"{metric}: not applicable" in note for note in notes):
        return "the metric does not apply to them (the notes say why); rank with another metric to compare them."
    if any(f"{metric} failed" in note for note in notes):
        return ("the metric failed on them; the notes say why. Where it failed for lack of data, use more samples "
                "per class; otherwise rank with another metric.")
    return "the notes say why."


def _natural_width(table: Table) -> int:
    """The width ``table`` takes when nothing is wrapped or cut."""
    console = Console(width=100_000, file=io.StringIO())
    return Measurement.get(console, console.options, table).maximum
