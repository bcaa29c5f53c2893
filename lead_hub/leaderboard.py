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
    """A ranked table of models with the provenance of the run that produced it (see the module docstring)."""

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
        """Write ``<directory>/<stem>.<format>`` for each format (csv, json, parquet, md, png); return the paths."""
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

    def plot(self, path: str | Path) -> None:
        """A PNG: the primary score per model as a dot plot (best on top) and score versus size with the Pareto
        front (:mod:`lead_hub.chart`)."""
        from lead_hub.chart import save_chart

        title = f"{self.provenance.get('dataset', '')} [{self.provenance.get('split', '')}]"
        save_chart(self.table, self.primary_metric, display_names(self.table["model_id"]), title, path)

    def to_rich(self, width: int | None = None) -> Table:
        """A rich console table: rank, short model name, the scores, size, times and Pareto flag; the notes as a
        caption below. Model names are never cut: when ``width`` is too narrow for every column, the times, the
        size, the Pareto flag and then the secondary scores are left out (in that order)."""
        names = display_names(self.table["model_id"])
        optional = ["score_seconds", "extract_seconds", "num_params", "pareto", *self.metrics[:0:-1]]
        shown = ["rank", "model_id", *self.metrics, "num_params", "extract_seconds", "score_seconds", "pareto"]
        while True:
            table = self._rich_table(shown, names)
            if width is None or not optional or _natural_width(table) <= width:
                return table
            shown.remove(optional.pop(0))

    def _rich_table(self, shown: list[str], names: dict[str, str]) -> Table:
        noted = self.table[self.table["notes"].ne("")]
        table = Table(title=escape(self.title),
                      caption=escape("\n".join(f"{names[row.model_id]}: {row.notes}" for row in noted.itertuples())),
                      caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
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
        """``lead_hub leaderboard: <dataset> [<split>], <N> samples``."""
        provenance = self.provenance
        return (f"lead_hub leaderboard: {provenance.get('dataset', '')} [{provenance.get('split', '')}], "
                f"{provenance.get('samples', '?')} samples")

    @property
    def warnings(self) -> list[str]:
        """Metrics that cannot rank these models: exact ties (saturation) and missing scores, each with the fix."""
        return ranking_warnings(self.table, self.metrics, self.provenance.get("samples"))

    # ---- reading ---------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "Leaderboard":
        """Read a leaderboard written by ``save`` (csv, json, parquet or md, by extension)."""
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


def ranking_warnings(table: pd.DataFrame, metrics: list[str], samples: int | None = None) -> list[str]:
    """One sentence per metric that does not order the models of ``table``, saying what to do instead.

    Two cases: several models with the same score (equal to 1e-9 relative: H-score's K−1, SFDA's and PED's 1.0
    when features have at least N − 1 dimensions for N samples), and models without a score (NaN: the metric
    failed, e.g. NLEEP with too few samples per class, or does not apply; the notes say which).
    """
    names = display_names(table["model_id"])
    warnings = []
    for metric in metrics:
        if metric not in table.columns:
            continue
        scores = table[metric].to_numpy(float)
        finite = np.isfinite(scores)
        grouped = ~finite
        for index in np.flatnonzero(finite):
            tied = finite & np.isclose(scores, scores[index], rtol=1e-9, atol=1e-12)
            if grouped[index] or tied.sum() < 2:
                continue
            grouped |= tied
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
        if not finite.all():
            missing = ", ".join(names[model_id] for model_id in table["model_id"][~finite])
            warnings.append(f"{metric} has no score for {int((~finite).sum())} of {len(scores)} models ({missing}); "
                            "the notes say why. Where it failed for lack of data, use more samples per class, or "
                            "rank with another metric.")
    return warnings


def _natural_width(table: Table) -> int:
    """The width ``table`` takes when nothing is wrapped or cut."""
    console = Console(width=100_000, file=io.StringIO())
    return Measurement.get(console, console.options, table).maximum
