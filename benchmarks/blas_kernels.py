"""How far the committed LEAD figures move with the CPU's BLAS kernel: the tolerance of the tests that rerun them.

OpenBLAS picks its kernels by CPU (``OPENBLAS_CORETYPE`` overrides the choice), and kernels sum in different orders,
so a float64 figure computed on one CPU differs from the same computation on another by round-off. The tests that
compare reruns with committed figures (``tests/test_benchmark_reproducible.py``, the synthetic rows of
``tests/test_lead_roundoff.py``) take their tolerance from this measurement, not from one machine's bits: each
kernel below runs in its own process (``--worker``) and recomputes

* ``reproducible``: the committed benchmark scores the reproducibility test reruns (:func:`reproducible_subset`:
  two zoo models on flowers5, the previous head-only default and a head-NTK variant at full data and one low-data
  draw, a whole-network variant for one model; on coil20, one of the added targets, the previous default and
  the whole-network default); features and whole-network norms come from torch, whose kernels
  ``OPENBLAS_CORETYPE`` does not touch, so they are computed once and shared through ``--cache-dir``;
* ``roundoff``: the synthetic rows of ``benchmarks/results/lead_roundoff.csv`` (``lead_roundoff.measure``),

and the parent writes, per figure kind, the largest relative difference to the committed figures and between
kernels, to ``benchmarks/results/blas_kernel_spread.csv``.

    python benchmarks/blas_kernels.py                      # every kernel of KERNELS (needs ../shared/data)
    python benchmarks/blas_kernels.py --kernels Haswell    # one kernel
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark import regimes  # noqa: E402
from benchmark_lead import (BENCHMARK_LEAD_GRIDS, FULL_NTK_SAMPLES_PER_CLASS, LOG_INITS, LeadGrid,  # noqa: E402
                            full_regime, score_lead_target)

RESULTS = REPOSITORY / "benchmarks" / "results"
SHARED = Path(os.environ.get("LEAD_HUB_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))
#: OpenBLAS kernels of x86-64 CPUs from 2008 (Prescott) to 2017 (SkylakeX); every one runs on a newer CPU.
KERNELS = ("SkylakeX", "Haswell", "Sandybridge", "Prescott")
TARGET = "flowers5"
#: One of the six added development targets, the cheapest (960 images of 32 px).
ADDED_TARGET = "coil20"
#: LEAD's whole-network default as the benchmark names it (pre-registered variant c).
WHOLE_NETWORK_DEFAULT = "lead ntk=full head_input=standardized S=64 fit=in_sample c=1e-08 ce_form=prob"
MODELS = ("mobilenetv1_025.coral_in1k", "mobilenetv1_025.mlperf_vww")  # the two smallest zoo folders
KEYS = ["target", "variant", "regime", "draw", "model"]
ROUNDOFF_FIGURES = ("max_relative_change", "median_relative_change", "max_relative_change_log_init_alone",
                    "max_relative_change_eigenvalue")


def _fast_regimes(labels):
    return [r for r in regimes(labels) if r[0] == "full" or (r[0] == "5/class" and r[1] == 0)]


def _whole_network_regimes(labels):
    return [r for r in regimes(labels) if r[0] == "full" or (r[0] == "2/class" and r[1] == 0)]


def _head_grids() -> list[LeadGrid]:
    """The previous head-only default and a head-NTK variant, under their names in the committed CSV."""
    head = dict(BENCHMARK_LEAD_GRIDS["head"].ntks)
    return [BENCHMARK_LEAD_GRIDS["default"],
            LeadGrid({"fit=leave_one_out": LOG_INITS["fit=leave_one_out"]},
                     {"ntk=head head_input=raw": (head["ntk=head head_input=raw"][0], (1 / 1024,))}, ("prob",))]


def _full_grid() -> LeadGrid:
    """A whole-network-NTK variant of the benchmark's grid (its sample size), under its name in the committed CSV."""
    (full_label, (full_options, _)), = BENCHMARK_LEAD_GRIDS["full-standardized"].ntks.items()
    assert full_options["ntk_samples_per_class"] == FULL_NTK_SAMPLES_PER_CLASS == 64
    return LeadGrid({"fit=out_of_fold": LOG_INITS["fit=out_of_fold"]}, {full_label: (full_options, (1e-6,))})


def reproducible_subset(shared_data: Path, cache_dir: Path) -> pd.DataFrame:
    """The benchmark's own scoring of a small part of ``metric_scores.csv``, from the images (14 rows, ``KEYS`` and
    ``score``): the two smallest zoo models on flowers5 with the previous default and a head-NTK variant at full
    data and on one 5-per-class draw, and a whole-network variant for the first model at full data and on one
    2-per-class draw; on coil20 (an added target) the two models with the previous default at full data, and
    LEAD's whole-network default for the first model at full data and on one 2-per-class draw. Scored with one BLAS thread, as
    ``run_benchmark.py`` scores."""
    model_ids = [f"local-dir:{shared_data / 'zoo' / model}" for model in MODELS]
    folder, added = shared_data / "targets" / TARGET, shared_data / "targets" / ADDED_TARGET
    with threadpool_limits(1):
        tables = [
            score_lead_target(TARGET, folder, model_ids, _head_grids(), cache_dir=cache_dir, regimes_of=_fast_regimes),
            score_lead_target(TARGET, folder, model_ids[:1], [_full_grid()], cache_dir=cache_dir,
                              full_ntk_regimes_of=_whole_network_regimes),
            score_lead_target(ADDED_TARGET, added, model_ids, [BENCHMARK_LEAD_GRIDS["default"]], cache_dir=cache_dir,
                              regimes_of=full_regime),
            score_lead_target(ADDED_TARGET, added, model_ids[:1], BENCHMARK_LEAD_GRIDS["full-standardized"].restricted(
                [WHOLE_NETWORK_DEFAULT]), cache_dir=cache_dir, regimes_of=full_regime,
                full_ntk_regimes_of=_whole_network_regimes),
        ]
    return pd.concat(tables, ignore_index=True)[[*KEYS, "score"]]


def committed_scores() -> pd.DataFrame:
    return pd.read_csv(RESULTS / "metric_scores.csv", keep_default_na=False, na_values=[""],
                       usecols=[*KEYS, "score"])


def synthetic_roundoff_rows(draws: int) -> pd.DataFrame:
    """``lead_roundoff.csv``'s synthetic rows, measured again (one BLAS thread, as the script measures)."""
    import lead_roundoff

    with threadpool_limits(limits=1, user_api="blas"):
        return pd.DataFrame(lead_roundoff.measure("synthetic", *lead_roundoff.synthetic_problem(), draws))


def _worker(output: Path, cache_dir: Path) -> None:
    kernel = [entry.get("architecture") for entry in threadpool_info() if entry.get("internal_api") == "openblas"]
    committed_roundoff = pd.read_csv(RESULTS / "lead_roundoff.csv")
    draws = int(committed_roundoff.loc[committed_roundoff["source"] == "synthetic", "draws"].iloc[0])
    result = {"kernel": kernel, "reproducible": reproducible_subset(SHARED, cache_dir).to_dict("records"),
              "roundoff": synthetic_roundoff_rows(draws).to_dict("records")}
    output.write_text(json.dumps(result))


def kernel_tolerance(figures: str, spread_csv: Path = RESULTS / "blas_kernel_spread.csv") -> float:
    """The relative tolerance of a test that compares reruns of ``figures`` with the committed ones: ten times the
    largest relative difference to them measured across kernels (``spread_csv``, written by :func:`main`)."""
    spread = pd.read_csv(spread_csv)
    measured = spread.loc[spread["figures"] == figures, "max_relative_difference_to_committed"]
    if len(measured) < 2:
        raise ValueError(f"{spread_csv.name} measures {figures!r} under {len(measured)} kernel(s); run "
                         "benchmarks/blas_kernels.py")
    return 10 * max(float(measured.max()), 1e-12)


def _relative(values: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(values / reference - 1.0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS))
    parser.add_argument("--cache-dir", type=Path, default=REPOSITORY / ".lead_hub_cache" / "benchmark")
    parser.add_argument("--output", type=Path, default=RESULTS / "blas_kernel_spread.csv")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.worker is not None:
        _worker(arguments.worker, arguments.cache_dir)
        return 0
    committed = committed_scores()
    committed_roundoff = pd.read_csv(RESULTS / "lead_roundoff.csv")
    committed_roundoff = committed_roundoff[committed_roundoff["source"] == "synthetic"].reset_index(drop=True)
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for kernel in arguments.kernels:
            output = Path(folder) / f"{kernel}.json"
            environment = {**os.environ, "OPENBLAS_CORETYPE": kernel}
            subprocess.run([sys.executable, __file__, "--worker", str(output), "--cache-dir", str(arguments.cache_dir)],
                           env=environment, check=True)
            runs[kernel] = json.loads(output.read_text())
            print(f"{kernel}: ran on OpenBLAS kernel {runs[kernel]['kernel']}", flush=True)
    rows = []
    first = arguments.kernels[0]
    for kernel, run in runs.items():
        scores = pd.DataFrame(run["reproducible"]).merge(committed, on=KEYS, suffixes=("", "_committed"),
                                                         validate="one_to_one")
        reference = pd.DataFrame(runs[first]["reproducible"])["score"].to_numpy()
        rows.append({"figures": "reproducible benchmark scores", "kernel": kernel,
                     "openblas_architecture": ",".join(map(str, run["kernel"])), "count": len(scores),
                     "max_relative_difference_to_committed": _relative(scores["score"].to_numpy(),
                                                                       scores["score_committed"].to_numpy()),
                     f"max_relative_difference_to_{first}": _relative(
                         pd.DataFrame(run["reproducible"])["score"].to_numpy(), reference)})
        measured = pd.DataFrame(run["roundoff"])
        reference = pd.DataFrame(runs[first]["roundoff"])
        rows.append({"figures": "synthetic round-off rows", "kernel": kernel,
                     "openblas_architecture": ",".join(map(str, run["kernel"])),
                     "count": len(measured) * len(ROUNDOFF_FIGURES),
                     "max_relative_difference_to_committed": max(
                         _relative(measured[column].to_numpy(), committed_roundoff[column].to_numpy())
                         for column in ROUNDOFF_FIGURES),
                     f"max_relative_difference_to_{first}": max(
                         _relative(measured[column].to_numpy(), reference[column].to_numpy())
                         for column in ROUNDOFF_FIGURES)})
    table = pd.DataFrame(rows)
    table.to_csv(arguments.output, index=False, float_format="%.3g")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
