"""LEAD's variant grid in the offline benchmark, every variant scored from parts computed once.

A LEAD score is ``evolution_score(log_init, labels, c · λ̄, ce_form)`` (``lead_hub.metrics.lead``): log_init
depends only on the classifier options (``classifier``, ``fit``, ``margins``, ``regularization``, ``folds``,
``seed``), λ̄ only on the NTK options (``ntk``, ``head_input``, ``head_widths``, ``ntk_samples_per_class``,
``seed``), and the rate constant c and ``ce_form`` enter only the closed-form last step. A :class:`LeadGrid`
crosses log_init options × NTK options × rate constants × cross-entropy forms; :func:`score_lead_grid` computes
each log_init and each λ̄ once per (model, regime) and every variant of the grid from them. Each variant's score
is exactly ``lead(features, labels, sample_ids=..., ntk_sq_norms=..., **variant.options)``
(``tests/test_benchmark_lead.py`` checks it on real rows): :func:`lead_parts` takes the same steps as
``lead()``, with the same functions, in the same order.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from benchmark import IMAGE_SIZE, MetricVariant, benchmark_features, benchmark_images, regimes
from lead_hub.features import ExtractedFeatures
from lead_hub.metrics._content_keys import content_keys, id_keys
from lead_hub.metrics._lead_evolution import evolution_score
from lead_hub.metrics._lead_log_init import initial_logits
from lead_hub.metrics._lead_ntk import class_mean_eigenvalues, ntk_head
from lead_hub.metrics._scaling import ColumnScaling
from lead_hub.metrics._validation import check_inputs
from lead_hub.metrics.lead import LeadOptions, _full_network_eigenvalues, _ntk_rows
from lead_hub.models import Backbone, load_backbone
from lead_hub.ntk import lead_sq_norms, sample_ids

#: Options that change log_init, and options that change λ̄; rate_constant and ce_form change neither.
LOG_INIT_OPTIONS = ("classifier", "fit", "margins", "regularization", "folds", "seed")
NTK_OPTIONS = ("ntk", "head_input", "head_widths", "ntk_samples_per_class", "seed")


@dataclass(frozen=True)
class LeadGrid:
    """LEAD variants sharing their expensive parts: every ``log_inits`` entry × every ``ntks`` entry × that entry's
    rate constants × every ``ce_forms`` entry.

    ``log_inits`` maps a short label to log_init options, ``ntks`` a short label to ``(NTK options, rate
    constants)``. Rates are c · λ̄ (``rate_scale="standardize"``), so the rate constants are the same fixed numbers
    for every model and target.
    """

    log_inits: Mapping[str, Mapping[str, Any]]
    ntks: Mapping[str, tuple[Mapping[str, Any], tuple[float, ...]]]
    ce_forms: tuple[str, ...] = ("log_prob",)
    name: str | None = None

    def __post_init__(self) -> None:
        for label, options in self.log_inits.items():
            _check_options(label, options, LOG_INIT_OPTIONS)
        for label, (options, _) in self.ntks.items():
            _check_options(label, options, NTK_OPTIONS)
        cells = len(self.log_inits) * len(self.ce_forms) * sum(len(rates) for _, rates in self.ntks.values())
        if self.name is not None and cells != 1:
            raise ValueError(f"LeadGrid {self.name!r}: a name is for a grid of one variant, this one has {cells}")

    @classmethod
    def single(cls, name: str, options: Mapping[str, Any]) -> LeadGrid:
        """The one-variant grid of ``lead(**options)`` (package defaults for the options not given), named ``name``.
        ``options`` name the NTK (``"head"`` or ``"full"``): the grid computes λ̄ itself."""
        settings = LeadOptions(**options)
        if settings.ntk not in ("head", "full"):
            raise ValueError(f"LeadGrid {name!r}: name the NTK (ntk='head' or 'full'), got ntk={settings.ntk!r}")
        if settings.rate_scale != "standardize":
            raise ValueError(f"LeadGrid {name!r}: rates are c · λ̄ here; rate_scale={settings.rate_scale!r} is not")
        log_init = {key: getattr(settings, key) for key in LOG_INIT_OPTIONS}
        ntk = {key: getattr(settings, key) for key in NTK_OPTIONS}
        ntk["head_input"] = settings.resolved_head_input()
        return cls({"": log_init}, {"": (ntk, (settings.resolved_rate_constant(settings.ntk),))}, (settings.ce_form,),
                   name)

    def cells(self) -> Iterator[tuple[str, str, float, str, MetricVariant]]:
        """(log_init label, NTK label, rate constant, ce_form, variant) for every variant of the grid."""
        for log_label, ntk_label, ce_form in itertools.product(self.log_inits, self.ntks, self.ce_forms):
            ntk_options, rate_constants = self.ntks[ntk_label]
            for rate_constant in rate_constants:
                options = {**self.log_inits[log_label], **ntk_options, "rate_constant": float(rate_constant),
                           "ce_form": ce_form}
                name = self.name or f"lead {ntk_label} {log_label} c={rate_constant:.4g}"
                if ce_form != "log_prob" and self.name is None:
                    name += f" ce_form={ce_form}"
                yield log_label, ntk_label, float(rate_constant), ce_form, MetricVariant(name, "lead", options, "lead")

    def variants(self) -> list[MetricVariant]:
        return [cell[-1] for cell in self.cells()]

    def restricted(self, names: Iterable[str]) -> list[LeadGrid]:
        """One-variant grids of the variants of this grid named in ``names``, under the same names (a run that scores
        a few cells, e.g. on new targets, without the rest of the grid)."""
        names = set(names)
        if self.name is not None:
            return [self] if self.name in names else []
        return [LeadGrid({log_label: self.log_inits[log_label]},
                         {ntk_label: (self.ntks[ntk_label][0], (rate_constant,))}, (ce_form,))
                for log_label, ntk_label, rate_constant, ce_form, variant in self.cells() if variant.name in names]


def _check_options(label: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"LeadGrid entry {label!r}: options {sorted(unknown)} do not belong there (allowed: "
                         f"{', '.join(allowed)}); rate_constant and ce_form are the grid's own axes")


@dataclass
class LeadParts:
    """What every variant of a grid shares on one (model, regime): labels remapped to 0..K−1, log_init per
    log_init label, λ̄ per NTK label, and the seconds each took (standardising included in each)."""

    labels: np.ndarray
    log_inits: dict[str, np.ndarray]
    eigenvalues: dict[str, np.ndarray]
    seconds: dict[str, float]


def lead_parts(features: np.ndarray, labels: np.ndarray, grid: LeadGrid, *, sample_ids: np.ndarray | None = None,
               ntk_sq_norms: Mapping[str, np.ndarray] | None = None) -> LeadParts:
    """log_init and λ̄ of every entry of ``grid`` on one model's rows, by the steps of ``lead()``.

    ``ntk_sq_norms`` maps the label of every ``ntk="full"`` entry to the N per-sample squared gradient norms
    ``lead(..., ntk_sq_norms=...)`` would read for it (they depend on the head input, so on the entry).
    """
    checked = check_inputs(features, labels, None, metric="lead", keep_float32=True)
    started = time.perf_counter()
    scaling = ColumnScaling.fit(checked.features)
    standardize_seconds = time.perf_counter() - started
    keys_by_seed: dict[int, np.ndarray] = {}

    def keys(seed: int, fit: str | None = None) -> np.ndarray | None:
        """As ``lead()`` keys its choices: by the ids; without ids, by content for out-of-fold folds, else none."""
        if sample_ids is None and fit != "out_of_fold":
            return None
        if seed not in keys_by_seed:
            keys_by_seed[seed] = (content_keys(scaling.blocks(checked.features), seed) if sample_ids is None
                                  else id_keys(sample_ids, seed))
        return keys_by_seed[seed]

    parts = LeadParts(checked.labels, {}, {}, {})
    for label, options in grid.log_inits.items():
        settings = LeadOptions(**options)
        started = time.perf_counter()
        parts.log_inits[label] = initial_logits(
            checked.features, checked.labels, checked.num_classes, keys=keys(settings.seed, settings.fit),
            scaling=scaling,
            classifier=settings.classifier, fit=settings.fit, margins=settings.margins,
            regularization=settings.regularization, folds=settings.folds, seed=settings.seed)
        parts.seconds[label] = time.perf_counter() - started + standardize_seconds
    for label, (options, _) in grid.ntks.items():
        settings = LeadOptions(**options)
        started = time.perf_counter()
        if settings.ntk == "full":
            norms = None if ntk_sq_norms is None else ntk_sq_norms.get(label)
            parts.eigenvalues[label] = _full_network_eigenvalues(norms, checked.labels, checked.num_classes,
                                                                 keys(settings.seed), settings.ntk_samples_per_class)
        else:
            rows_per_class = _ntk_rows(checked.labels, checked.num_classes, keys(settings.seed),
                                       settings.ntk_samples_per_class)
            head = ntk_head(checked.features, checked.num_classes, widths=tuple(settings.head_widths),
                            seed=settings.seed, head_input=settings.resolved_head_input(), scaling=scaling)
            parts.eigenvalues[label] = class_mean_eigenvalues(
                head.head, head.inputs(checked.features, np.concatenate(rows_per_class)),
                [len(rows) for rows in rows_per_class])
        parts.seconds[label] = time.perf_counter() - started
    return parts


#: ``(model, NTK options, regime, draw, regime rows) → N_regime squared gradient norms`` for ``ntk="full"``.
NormsProvider = Callable[[str, Mapping[str, Any], str, int, np.ndarray], np.ndarray]


def score_lead_grid(
    target: str,
    features_by_model: Mapping[str, ExtractedFeatures],
    grid: LeadGrid,
    *,
    sample_ids: np.ndarray,
    ntk_sq_norms: NormsProvider | None = None,
    regimes_of: Callable[[np.ndarray], list[tuple[str, int, np.ndarray]]] = regimes,
    on_row: Callable[[dict], None] | None = None,
    on_parts: Callable[[LeadParts, str, np.ndarray], None] | None = None,
) -> pd.DataFrame:
    """Every variant of ``grid`` for every model of one target in every regime, in the long format of
    :func:`benchmark.score_target` (one row per target, variant, regime, draw, model). ``sample_ids`` are
    the N rows' identities (each image's row in its source split), sliced with each regime's rows like the
    features. ``seconds`` is what one ``lead()`` call of the variant takes: standardising, its log_init, its λ̄
    and the evolution (with the whole-network norms already computed). A model whose parts fail gets NaN and a
    note on each of its variants, as in ``score_target``. ``on_parts(parts, model, features)`` sees the shared
    parts of each (model, regime) with the regime's features.
    """
    models = list(features_by_model)
    labels = features_by_model[models[0]].labels
    sample_ids = np.asarray(sample_ids)
    if len(sample_ids) != len(labels):
        raise ValueError(f"{target}: {len(sample_ids)} sample_ids for {len(labels)} feature rows")
    full_labels = {label for label, (options, _) in grid.ntks.items() if LeadOptions(**options).ntk == "full"}
    if full_labels and ntk_sq_norms is None:
        raise ValueError(f"{target}: NTK entries {sorted(full_labels)} are ntk='full' and need ntk_sq_norms")
    cells = list(grid.cells())
    rows = []
    for regime, draw, indices in regimes_of(labels):
        for model in models:
            extracted = features_by_model[model]
            if not np.array_equal(extracted.labels, labels):
                raise ValueError(f"{target}: model {model} was extracted on other rows than {models[0]}")
            note, parts = "", None
            try:
                norms = {label: ntk_sq_norms(model, grid.ntks[label][0], regime, draw, indices)
                         for label in full_labels}
                parts = lead_parts(extracted.features[indices], labels[indices], grid,
                                   sample_ids=sample_ids[indices], ntk_sq_norms=norms)
                if on_parts is not None:
                    on_parts(parts, model, extracted.features[indices])
            except (ValueError, np.linalg.LinAlgError) as error:
                note = f"failed: {type(error).__name__}: {error}"
            for log_label, ntk_label, rate_constant, ce_form, variant in cells:
                score, seconds = math.nan, math.nan
                if parts is not None:
                    started = time.perf_counter()
                    score = evolution_score(parts.log_inits[log_label], parts.labels,
                                            rate_constant * parts.eigenvalues[ntk_label], ce_form)
                    seconds = (time.perf_counter() - started + parts.seconds[log_label]
                               + parts.seconds[ntk_label])
                row = {"target": target, "variant": variant.name, "family": variant.family,
                       "metric": variant.metric, "regime": regime, "draw": draw, "model": model,
                       "score": score, "seconds": seconds, "note": note}
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return pd.DataFrame(rows)


def grid_variant_names(grids: Iterable[LeadGrid]) -> list[str]:
    """Names of every variant of ``grids``, refusing a name given twice (it would mix two variants' rows)."""
    names = [variant.name for grid in grids for variant in grid.variants()]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"LEAD grid variants named twice: {duplicated[:5]}")
    return names


def computed_norms(norms: Mapping[str, Mapping[tuple[str, int], Mapping[tuple[str, int], np.ndarray]]]
                   ) -> NormsProvider:
    """The :data:`NormsProvider` of precomputed whole-network norms: ``norms[model][(head_input,
    ntk_samples_per_class)][(regime, draw)]`` is ``NtkNorms.vector(N)`` over all N images of the target, from
    ``lead_sq_norms`` with those options and the regime draw's rows as ``scored_rows``; the provider slices it with
    the draw's rows. A (regime, draw) not computed raises."""

    def provider(model: str, ntk_options: Mapping[str, Any], regime: str, draw: int, indices: np.ndarray):
        settings = LeadOptions(**ntk_options)
        key = (settings.resolved_head_input(), settings.ntk_samples_per_class)
        by_regime = norms.get(model, {}).get(key, {})
        if (regime, draw) not in by_regime:
            raise ValueError(f"no whole-network NTK norms of {model} for head_input={key[0]!r}, "
                             f"ntk_samples_per_class={key[1]} in regime {regime} draw {draw}")
        return by_regime[(regime, draw)][indices]

    return provider


def full_regime(labels: np.ndarray) -> list[tuple[str, int, np.ndarray]]:
    """The full-data regime alone (where the whole-network NTK variants are scored by default)."""
    return regimes(labels)[:1]


def full_ntk_keys(grid: LeadGrid) -> list[tuple[str, int, Mapping[str, Any]]]:
    """(head_input, ntk_samples_per_class, NTK options) of every ``ntk="full"`` entry of ``grid``."""
    keys = []
    for options, _ in grid.ntks.values():
        settings = LeadOptions(**options)
        if settings.ntk == "full":
            keys.append((settings.resolved_head_input(), settings.ntk_samples_per_class, options))
    return keys


def score_lead_target(
    target: str,
    target_folder: str | Path,
    model_ids: list[str],
    grids: Iterable[LeadGrid],
    *,
    cache_dir: str | Path,
    regimes_of: Callable[[np.ndarray], list[tuple[str, int, np.ndarray]]] = regimes,
    full_ntk_regimes_of: Callable[[np.ndarray], list[tuple[str, int, np.ndarray]]] = full_regime,
    on_table: Callable[[LeadGrid, pd.DataFrame], None] | None = None,
    on_norms: Callable[[dict], None] | None = None,
    on_parts: Callable[[LeadParts, str, np.ndarray], None] | None = None,
) -> pd.DataFrame:
    """Every LEAD grid on one benchmark target: the features (cached), the whole-network NTK norms its
    ``ntk="full"`` entries need, then :func:`score_lead_grid` with the samples' ids. Models are keyed by their
    folder name. A grid with ``ntk="full"`` entries is scored in the regimes of ``full_ntk_regimes_of`` (default:
    the full data only), the others in those of ``regimes_of``.

    Whole-network norms: ``lead_hub.ntk.lead_sq_norms`` once per model, head input and regime draw, with the draw's
    rows as ``scored_rows`` (a draw's standardised head, and its head's input columns, are those of the draw),
    cached under ``cache_dir``. The model goes by its id until a call finds rows missing from the cache (that call
    loads it); it is then loaded once more and reused for the model's remaining draws, so a warm cache loads
    nothing and a cold one loads each model twice, not once per draw.
    ``on_table`` receives each grid's scores as they come, ``on_norms`` one record per norms call (model, head
    input, regime, draw, rows, rows computed now, seconds, trainable parameters); ``on_parts`` as in
    :func:`score_lead_grid`."""
    images = benchmark_images(target_folder)
    extracted = benchmark_features(target_folder, model_ids, cache_dir=cache_dir, images=images)
    names = {model_id: model_id.rsplit("/", 1)[-1] for model_id in model_ids}
    features = {names[model_id]: result for model_id, result in extracted.items()}
    ids = sample_ids(images)
    tables = []
    for grid in grids:
        keys = full_ntk_keys(grid)
        provider, grid_regimes = None, regimes_of
        if keys:
            grid_regimes = full_ntk_regimes_of
            norms: dict[str, dict] = {}
            for model_id in model_ids:
                backbone: Backbone | str = model_id  # loaded at the first call that has rows to compute
                for regime, draw, indices in grid_regimes(images.labels):
                    for head_input, per_class, options in keys:
                        computed = lead_sq_norms(backbone, images, extracted[model_id].features, lead_options=options,
                                                 scored_rows=indices, cache_dir=cache_dir, image_size=IMAGE_SIZE,
                                                 num_workers=0, progress=False)
                        if computed.computed_rows and isinstance(backbone, str):
                            backbone = load_backbone(model_id, image_size=IMAGE_SIZE)
                        by_regime = norms.setdefault(names[model_id], {}).setdefault((head_input, per_class), {})
                        by_regime[(regime, draw)] = computed.vector(len(images))
                        if on_norms is not None:
                            on_norms({"target": target, "model": names[model_id], "head_input": head_input,
                                      "ntk_samples_per_class": per_class, "regime": regime, "draw": draw,
                                      "rows": len(computed.rows), "rows_computed": computed.computed_rows,
                                      "seconds": computed.seconds,
                                      "trainable_parameters": computed.trainable_parameters,
                                      "device": computed.device})
            provider = computed_norms(norms)
        table = score_lead_grid(target, features, grid, sample_ids=ids, ntk_sq_norms=provider,
                                regimes_of=grid_regimes, on_parts=on_parts)
        if on_table is not None:
            on_table(grid, table)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


# --- the benchmark's LEAD variants ----------------------------------------------------------------------------------

#: Rate constants with the head-only NTK: λ̄ is 10²-10⁴ per class on the zoo (raw or standardised head inputs),
#: so c from 2⁻¹⁸ to 2⁻⁸ (factors of 4) puts rates between about 10⁻³ and 60; c = 0 is log_init alone.
HEAD_RATE_CONSTANTS = (1 / 262144, 1 / 65536, 1 / 16384, 1 / 4096, 1 / 1024, 1 / 256)
#: Rate constants with the whole-network NTK, whose λ̄ spans 13× to 18,000× across the zoo and reaches ~10⁹:
#: every decade from 10⁻¹⁰ to 10⁻², the same for every model and target.
FULL_RATE_CONSTANTS = tuple(10.0 ** -exponent for exponent in range(10, 1, -1))
#: NTK rows per class with the whole network: the paper's (and LEAD's default) 64. A row costs a forward and
#: backward pass through the backbone (20-95 ms of CPU at 64 px, ``results/ntk_cost.csv``); the low-data regimes
#: (``run_benchmark.py --full-ntk-low-data``) need every draw's rows through every draw's head, 85 more per class.
FULL_NTK_SAMPLES_PER_CLASS = 64
LOG_INITS = {"fit=out_of_fold": {"fit": "out_of_fold"}, "fit=leave_one_out": {"fit": "leave_one_out"},
             "fit=in_sample": {"fit": "in_sample"}}
CE_FORMS_SCORED = ("log_prob", "prob")

#: The options of the variant named "lead": the package's default when the benchmark's scores were made (head-only
#: NTK, out-of-fold ridge log_init, c = 1/16384, log_prob; one of the head grid's variants too), spelled out so
#: that a later change of the package's defaults cannot put other scores under the same name
#: (benchmarks/preregistration.md, variant a).
PRE_ROUND_DEFAULT = {"classifier": "ridge", "fit": "out_of_fold", "margins": "softmax", "regularization": 1e-2,
                     "folds": 5, "rate_scale": "standardize", "rate_constant": 1 / 16384, "head_widths": (1024, 2048),
                     "ntk_samples_per_class": 64, "ce_form": "log_prob", "seed": 0, "ntk": "head",
                     "head_input": "standardized"}

BENCHMARK_LEAD_GRIDS = {
    "default": LeadGrid.single("lead", PRE_ROUND_DEFAULT),
    "head": LeadGrid(LOG_INITS, {
        "ntk=head head_input=standardized": ({"ntk": "head", "head_input": "standardized"},
                                             (0.0, *HEAD_RATE_CONSTANTS)),
        "ntk=head head_input=raw": ({"ntk": "head", "head_input": "raw"}, HEAD_RATE_CONSTANTS),
    }, CE_FORMS_SCORED),
    **{f"full-{head_input}": LeadGrid(LOG_INITS, {
        f"ntk=full head_input={head_input} S={FULL_NTK_SAMPLES_PER_CLASS}": (
            {"ntk": "full", "head_input": head_input, "ntk_samples_per_class": FULL_NTK_SAMPLES_PER_CLASS},
            FULL_RATE_CONSTANTS)}, CE_FORMS_SCORED) for head_input in ("standardized", "raw")},
    # the paper's one-vs-rest SVM fit in sample; several seconds per model, so never a default candidate
    "paper-faithful": LeadGrid.single("lead paper-faithful (ovr_svm in-sample)",
                                      {**PRE_ROUND_DEFAULT, "classifier": "ovr_svm", "fit": "in_sample"}),
}
