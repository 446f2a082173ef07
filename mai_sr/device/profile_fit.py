"""Fit a device profile's cost coefficients to published latencies, and validate the fit by
leaving one architecture out at a time.

Used by ``benchmarks/phone_estimates.py`` (and its tests); nothing at run time fits. NumPy
and SciPy only.

The model: ``ms = features . coefficients + cpu_ms`` per graph, with ``features`` the summed
:data:`mai_sr.device.estimate.FEATURES` and ``cpu_ms`` the fixed price of the layers the
profile puts on the CPU. The coefficients minimise the squared log error (every row counts
by its ratio, so a 10 ms model weighs as much as a 400 ms one), each one >= 0.

Leave-one-architecture-out: the rows of one architecture (every size and scale of it, e.g.
ETDS-T/S/M/L at x3 and x4) are predicted by a fit made on the other architectures' rows
only. That is the error a new architecture should expect; the in-sample error is reported
beside it but is not the validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Row:
    """One published timing: a graph's features, its CPU ms and the measured latency."""

    model: str             # e.g. "ETDS-M"
    architecture: str      # e.g. "ETDS": the unit left out together
    scale: int
    features: tuple[float, ...]
    cpu_ms: float
    published_ms: float


def fit(X: np.ndarray, y: np.ndarray, cpu: np.ndarray | None = None,
        active: np.ndarray | None = None) -> np.ndarray:
    """Non-negative coefficients minimising sum(log((X @ c + cpu) / y) ** 2).

    `active` (booleans per column) pins the other coefficients to 0. Columns that are all
    zero are pinned too (they carry no information)."""
    from scipy.optimize import least_squares

    X, y = np.asarray(X, float), np.asarray(y, float)
    cpu = np.zeros(len(y)) if cpu is None else np.asarray(cpu, float)
    use = np.ones(X.shape[1], bool) if active is None else np.array(active, bool)  # a copy
    use &= np.any(X != 0, axis=0)
    cols = np.flatnonzero(use)
    coef = np.zeros(X.shape[1])
    if not len(cols):
        return coef
    Xa = X[:, cols]
    # start from the non-negative linear least-squares solution on relative errors
    from scipy.optimize import nnls

    start, _ = nnls(Xa / y[:, None], (y - cpu) / y)
    start = np.maximum(start, 1e-6)

    def residuals(c):
        return np.log(np.maximum(Xa @ c + cpu, 1e-9) / y)

    coef[cols] = least_squares(residuals, x0=start, bounds=(0, np.inf)).x
    return coef


def tie_matrix(features, shared: dict[str, list[str]] | None = None) -> np.ndarray:
    """The (features x parameters) 0/1 matrix that makes the features of each `shared`
    group (a name -> feature names) one parameter; every other feature is a parameter of its
    own. The fit prices ``X @ M`` and writes the coefficients ``M @ c`` back per feature,
    so a shared coefficient appears, equal, under each of its features."""
    features = list(features)
    groups = [list(g) for g in (shared or {}).values()]
    tied = [f for g in groups for f in g]
    unknown = sorted(set(tied) - set(features))
    if unknown or len(tied) != len(set(tied)):
        raise ValueError(f"shared coefficients: unknown or repeated features {unknown or tied}")
    columns = [[f] for f in features if f not in tied] + groups
    M = np.zeros((len(features), len(columns)))
    for j, group in enumerate(columns):
        for f in group:
            M[features.index(f), j] = 1.0
    return M


def _pct(estimate: float, published: float) -> float:
    return 100.0 * (estimate / published - 1.0)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def leave_one_architecture_out(rows: list[Row], active=None, tie: np.ndarray | None = None
                               ) -> dict:
    """Fit on all `rows`, then predict each architecture's rows from a fit without it.
    `tie` (:func:`tie_matrix`) makes groups of features share one coefficient.

    Returns {"coefficients", "fold_coefficients" (each fold's, by the architecture it left
    out: how stable the prices are), "rows": [{model, architecture, scale, published_ms,
    estimate_ms (full fit), loo_ms, error_pct, loo_error_pct}], "median_abs_pct",
    "max_abs_pct", "spearman" (LOO estimates vs published), "in_sample": {...}}."""
    X = np.array([r.features for r in rows], float)
    y = np.array([r.published_ms for r in rows], float)
    cpu = np.array([r.cpu_ms for r in rows], float)
    arch = np.array([r.architecture for r in rows])
    M = np.eye(X.shape[1]) if tie is None else np.asarray(tie, float)
    if active is not None:  # a parameter is active when all its features are
        active = np.array([all(np.asarray(active, bool)[M[:, j] > 0])
                           for j in range(M.shape[1])])
    coef = M @ fit(X @ M, y, cpu, active)
    loo = np.zeros(len(rows))
    folds = {}
    for a in dict.fromkeys(arch):
        out = arch == a
        c = M @ fit(X[~out] @ M, y[~out], cpu[~out], active)
        loo[out] = X[out] @ c + cpu[out]
        folds[str(a)] = [round(float(v), 6) for v in c]
    full = X @ coef + cpu
    table = [{"model": r.model, "architecture": r.architecture, "scale": r.scale,
              "published_ms": r.published_ms, "estimate_ms": round(float(full[i]), 3),
              "loo_ms": round(float(loo[i]), 3),
              "error_pct": round(_pct(full[i], y[i]), 1),
              "loo_error_pct": round(_pct(loo[i], y[i]), 1)} for i, r in enumerate(rows)]
    loo_abs = np.abs([t["loo_error_pct"] for t in table])
    full_abs = np.abs([t["error_pct"] for t in table])
    return {"coefficients": coef.tolist(), "fold_coefficients": folds, "rows": table,
            "median_abs_pct": round(float(np.median(loo_abs)), 1),
            "max_abs_pct": round(float(np.max(loo_abs)), 1),
            "spearman": round(spearman(loo, y), 3),
            "in_sample": {"median_abs_pct": round(float(np.median(full_abs)), 1),
                          "max_abs_pct": round(float(np.max(full_abs)), 1),
                          "spearman": round(spearman(full, y), 3)}}
