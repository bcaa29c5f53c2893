"""LEAD step 1: the initial logits ``log_init`` (N×K) from a linear multi-class classifier on the features.

Options (METHOD.md §3, open points 2 and 3):

``classifier``
    ``"ridge"``: least squares on ±1 one-vs-rest targets with an unpenalised intercept and penalty α·N·‖W‖²,
    solved in closed form (``_ridge``: primal D×D or dual N×N, whichever is smaller; k folds reuse one Gram).
    ``"ovr_svm"``: scikit-learn ``LinearSVC`` one-vs-rest (the paper's SVM). ``"cs_svm"``: Crammer–Singer
    multi-class ``LinearSVC``. ``"logistic"``: multinomial ``LogisticRegression`` (lbfgs).
``fit``
    ``"in_sample"``: fit and predict on the same samples (the paper's wording); ``"out_of_fold"``: stratified
    k-fold, each sample predicted by the classifier that did not see it; folds are dealt by the samples' keys
    (``_content_keys``: id keys when the caller has sample ids, content keys otherwise), so they do not depend on
    sample order or class ids; ``"leave_one_out"`` (ridge only): each sample predicted by the ridge fit on all the
    others, exactly, in closed form from one fit (``_ridge.ridge_leave_one_out``): no folds, so nothing that
    round-off could reassign.
``margins``
    ``"softmax"``: ``softmax(m)`` of the raw margins m; ``"calibrated"``: ``softmax(m / T)`` with the one
    temperature T > 0 that minimises the cross-entropy of the margins against the labels (a 1-D fit, the same
    rule for every model); ``"raw"``: the margins themselves (only meaningful with ``ce_form="softmax_ce"``).

The classifier sees features standardised per dimension (``_scaling``, constant dimensions dropped), so the
regularisation strength means the same for every model whatever its feature scale. They are standardised once,
straight into the layout the classifier reads: the ridge gets them in fold order (each fold one contiguous
slice) and, on its primal route, in float32 (its N×D products run in float32 BLAS anyway, see ``_ridge``); its
leave-one-out fit gets float64 in the given order; the
scikit-learn classifiers get float64 in the given sample order (LinearSVC's coordinate descent visits the samples
in a seeded random order, so reordering them would move its solution).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from lead_hub.metrics._content_keys import spread_over_folds
from lead_hub.metrics._ridge import ridge_leave_one_out, ridge_predictions, solves_primal
from lead_hub.metrics._scaling import ColumnScaling

CLASSIFIERS = ("ridge", "ovr_svm", "cs_svm", "logistic")
FITS = ("in_sample", "out_of_fold", "leave_one_out")
MARGINS = ("softmax", "calibrated", "raw")


def initial_logits(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    keys: np.ndarray | None,
    scaling: ColumnScaling | None = None,
    classifier: str = "ridge",
    fit: str = "out_of_fold",
    margins: str = "softmax",
    regularization: float = 1e-2,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """``log_init`` as an N×K float64 array: normalised per-class outputs of the chosen linear classifier.

    ``features`` are standardised here with ``scaling`` (a ``ColumnScaling`` fit on them), or are already
    standardised (float64) when ``scaling`` is None. ``keys`` (``_content_keys``: ``id_keys`` or ``content_keys``)
    deal the out-of-fold folds; the other fits make no per-sample choice and take None.

    ``regularization`` is α of the ridge penalty α·N·‖W‖² and, for the SVMs and logistic regression, the inverse
    of scikit-learn's C per sample: C = 1 / (α·N), so the penalty weighs the same against the data term.
    """
    _check_choice("classifier", classifier, CLASSIFIERS)
    _check_choice("fit", fit, FITS)
    _check_choice("margins", margins, MARGINS)
    if fit == "leave_one_out" and classifier != "ridge":
        raise ValueError(f"lead: fit='leave_one_out' has a closed form only for classifier='ridge', got "
                         f"classifier={classifier!r}; use fit='out_of_fold' with it, or classifier='ridge'")
    if fit == "leave_one_out":
        standardized = features if scaling is None else scaling.transform(features)
        raw = ridge_leave_one_out(standardized, _ridge_targets(labels, num_classes), regularization)
        return normalise_margins(raw, labels, margins)
    if fit == "out_of_fold" and keys is None:
        raise ValueError("lead: fit='out_of_fold' deals its folds by the samples' keys; pass keys")
    fold_of_sample = spread_over_folds(labels, keys, folds) if fit == "out_of_fold" else None
    standardized, order = _classifier_input(features, scaling, classifier, fold_of_sample)
    if order is None:
        raw = _raw_margins(standardized, labels, num_classes, classifier, regularization, fold_of_sample, seed)
    else:
        raw = np.empty((len(labels), num_classes))
        raw[order] = _raw_margins(standardized, labels[order], num_classes, classifier, regularization,
                                  fold_of_sample[order], seed)
    return normalise_margins(raw, labels, margins)


def normalise_margins(raw: np.ndarray, labels: np.ndarray, margins: str) -> np.ndarray:
    """Turn raw margins into ``log_init`` with the ``margins`` rule of the module docstring."""
    if margins == "raw":
        return raw
    if margins == "softmax":
        return softmax(raw, axis=1)
    return softmax(raw / fit_temperature(raw, labels), axis=1)


def fit_temperature(raw: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising ``−mean log softmax(raw / T)[y]``, searched on log T in [−6, 6] (bounded Brent)."""
    rows = np.arange(len(labels))

    def cross_entropy(log_temperature: float) -> float:
        return float(-log_softmax(raw * np.exp(-log_temperature), axis=1)[rows, labels].mean())

    result = minimize_scalar(cross_entropy, bounds=(-6.0, 6.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def _classifier_input(features, scaling, classifier, fold_of_sample):
    """The standardised features in the layout of the module docstring, and the order of their rows (None: as
    given)."""
    if scaling is None:
        return features, None
    if classifier != "ridge":
        return scaling.transform(features), None
    order = None if fold_of_sample is None else np.argsort(fold_of_sample, kind="stable")
    primal = solves_primal(len(scaling.columns), len(features), fold_of_sample)
    return scaling.transform(features, rows=order, dtype=np.float32 if primal else np.float64), order


def _raw_margins(standardized, labels, num_classes, classifier, regularization, fold_of_sample, seed) -> np.ndarray:
    if classifier == "ridge":
        return ridge_predictions(standardized, _ridge_targets(labels, num_classes), regularization, fold_of_sample)
    if fold_of_sample is None:
        return _sklearn_margins(standardized, labels, num_classes, standardized, classifier, regularization, seed)
    raw = np.empty((len(labels), num_classes))
    for fold in np.unique(fold_of_sample):
        held_out = fold_of_sample == fold
        raw[held_out] = _sklearn_margins(standardized[~held_out], labels[~held_out], num_classes,
                                         standardized[held_out], classifier, regularization, seed)
    return raw


def _ridge_targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """±1 one-vs-rest targets, N×K."""
    targets = -np.ones((len(labels), num_classes))
    targets[np.arange(len(labels)), labels] = 1.0
    return targets


def _sklearn_margins(train, train_labels, num_classes, test, classifier, regularization, seed) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    inverse_penalty = 1.0 / (regularization * len(train))
    if classifier == "logistic":
        model = LogisticRegression(C=inverse_penalty, max_iter=500, tol=1e-4)
    else:
        multi_class = "crammer_singer" if classifier == "cs_svm" else "ovr"
        model = LinearSVC(C=inverse_penalty, multi_class=multi_class, max_iter=2000, tol=1e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(converge|multi_class).*")
        model.fit(train, train_labels)
    decision = model.decision_function(test)
    if decision.ndim == 1:  # two classes: scikit-learn returns the margin of class 1 only
        half = 2.0 if classifier == "logistic" else 1.0
        decision = np.stack([-decision, decision], axis=1) / half
    # Every class has >= 2 samples and stratified folds spread them, so each training fold holds every class.
    assert decision.shape[1] == num_classes, (decision.shape, num_classes)
    return decision


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"lead: {name}={value!r} is not one of {', '.join(choices)}")
