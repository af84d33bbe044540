"""How far a target domain lies from the source domain, measured on feature vectors.

Two measures, overall and per class:

* **Proxy A-distance** (Ben-David et al., 2007). A domain classifier (logistic
  regression on standardised features) learns to tell source rows from target
  rows; with its cross-validated error ε on a sample with as many rows of each
  domain, PAD = 2(1 - 2ε): 0 when the domains cannot be told apart (ε = 0.5),
  2 when they always can.
* **Maximum mean discrepancy**, the kernel two-sample statistic: an unbiased
  estimate of MMD² with an RBF kernel whose bandwidth is the median distance
  between rows (the median heuristic), on standardised features, with a
  permutation p-value (the share of random relabellings of the pooled rows whose
  statistic reaches the observed one) on a subsample of each domain.

Per class, source rows are grouped by their label and target rows by the class
the no-adaptation classifier predicts (their labels are unknown). The reading
(`reading`) turns the overall PAD into words with the thresholds of `LEVELS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# PAD below the first bound reads "similar", below the second "moderate", else "strong".
SIMILAR_BELOW = 0.5
MODERATE_BELOW = 1.5
LEVELS = ("similar", "moderate", "strong")
SIGNIFICANCE = 0.05
MAX_ROWS_PAD = 500  # rows of each domain the domain classifier sees
MAX_ROWS_MMD = 200  # rows of each domain in the kernel test
PERMUTATIONS = 200
CLASS_PERMUTATIONS = 100
MIN_CLASS_ROWS = 10  # rows of each domain a class needs for its own measures
FOLDS = 5


def _standardise(xs: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pooled = np.vstack([xs, xt])
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    std[std == 0] = 1.0
    return (xs - mean) / std, (xt - mean) / std


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def proxy_a_distance(xs: np.ndarray, xt: np.ndarray, seed: int = 0,
                     max_rows: int = MAX_ROWS_PAD) -> dict[str, float]:
    """The domain classifier's cross-validated accuracy and the proxy A-distance.

    Args:
        xs: Source rows `(n, d)`.
        xt: Target rows `(m, d)`.
        seed: Seed of the subsample and the folds.
        max_rows: At most this many rows of each domain (both get the same number).

    Returns:
        `{"domain_accuracy", "proxy_a_distance", "n"}` (`n` rows per domain).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(xs), len(xt), max_rows)
    x = np.vstack([_sample(xs, n, rng), _sample(xt, n, rng)])
    domain = np.r_[np.zeros(n, int), np.ones(n, int)]
    folds = StratifiedKFold(min(FOLDS, n), shuffle=True, random_state=seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    accuracy = float(np.mean(cross_val_score(classifier, x, domain, cv=folds)))
    pad = float(np.clip(2.0 * (1.0 - 2.0 * (1.0 - accuracy)), 0.0, 2.0))
    return {"domain_accuracy": accuracy, "proxy_a_distance": pad, "n": int(n)}


def mmd_test(xs: np.ndarray, xt: np.ndarray, seed: int = 0, max_rows: int = MAX_ROWS_MMD,
             permutations: int = PERMUTATIONS) -> dict[str, float]:
    """Unbiased MMD² with an RBF kernel (median heuristic) and its permutation p-value.

    Args:
        xs: Source rows `(n, d)`, standardised with `xt` (see `_standardise`).
        xt: Target rows `(m, d)`.
        seed: Seed of the subsample and the permutations.
        max_rows: At most this many rows of each domain.
        permutations: Random relabellings of the pooled rows.

    Returns:
        `{"mmd2", "mmd_p_value", "bandwidth"}`.
    """
    rng = np.random.default_rng(seed)
    a, b = _sample(xs, max_rows, rng), _sample(xt, max_rows, rng)
    z = np.vstack([a, b]).astype(np.float64)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    off = d2[np.triu_indices(len(z), 1)]
    median = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    kernel = np.exp(-d2 / (2.0 * median))
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves out each row with itself
    n, m = len(a), len(b)

    def statistic(first: np.ndarray) -> float:
        second = ~first
        kxx = kernel[np.ix_(first, first)].sum() / (n * (n - 1))
        kyy = kernel[np.ix_(second, second)].sum() / (m * (m - 1))
        kxy = kernel[np.ix_(first, second)].sum() / (n * m)
        return float(kxx + kyy - 2.0 * kxy)

    labels = np.r_[np.ones(n, bool), np.zeros(m, bool)]
    observed = statistic(labels)
    reached = sum(statistic(rng.permutation(labels)) >= observed for _ in range(permutations))
    return {"mmd2": observed, "mmd_p_value": (1 + reached) / (1 + permutations),
            "bandwidth": float(np.sqrt(median))}


def measure_shift(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, yt_pred: np.ndarray,
                  classes: list[str], seed: int = 0) -> dict[str, Any]:
    """Both measures overall and per class, and the reading.

    Args:
        xs: Source feature rows.
        ys: Their labels (indices into `classes`).
        xt: Target feature rows.
        yt_pred: The class predicted for each target row.
        classes: Class names.
        seed: Seed of every subsample, fold and permutation.

    Returns:
        `{"overall": {...}, "per_class": [...], "level", "reading"}`; a class with
        fewer than `MIN_CLASS_ROWS` rows in either domain has None measures.
    """
    zs, zt = _standardise(np.asarray(xs, np.float64), np.asarray(xt, np.float64))
    overall = {**proxy_a_distance(zs, zt, seed), **mmd_test(zs, zt, seed),
               "n_source": len(zs), "n_target": len(zt)}
    per_class = []
    for index, name in enumerate(classes):
        cs, ct = zs[ys == index], zt[yt_pred == index]
        row: dict[str, Any] = {"class": name, "n_source": len(cs), "n_target": len(ct),
                               "proxy_a_distance": None, "mmd2": None, "mmd_p_value": None}
        if min(len(cs), len(ct)) >= MIN_CLASS_ROWS:
            pad = proxy_a_distance(cs, ct, seed)
            test = mmd_test(cs, ct, seed, permutations=CLASS_PERMUTATIONS)
            row.update(proxy_a_distance=pad["proxy_a_distance"], mmd2=test["mmd2"],
                       mmd_p_value=test["mmd_p_value"])
        per_class.append(row)
    level, text = reading(overall, per_class)
    return {"overall": overall, "per_class": per_class, "level": level, "reading": text}


def shift_level(pad: float) -> str:
    """"similar", "moderate" or "strong" for a proxy A-distance (thresholds above)."""
    if pad < SIMILAR_BELOW:
        return LEVELS[0]
    return LEVELS[1] if pad < MODERATE_BELOW else LEVELS[2]


def reading(overall: dict[str, Any], per_class: list[dict[str, Any]]) -> tuple[str, str]:
    """The shift's level and a plain-language reading of it.

    Returns:
        `(level, text)`.
    """
    pad, p = overall["proxy_a_distance"], overall["mmd_p_value"]
    level = shift_level(pad)
    seen = (f"a domain classifier tells source from target images {overall['domain_accuracy']:.0%}"
            f" of the time (proxy A-distance {pad:.2f} of 2)")
    test = (f"the kernel test finds the difference significant (p = {p:.3f})" if p < SIGNIFICANCE
            else f"the kernel test finds no significant difference (p = {p:.2f})")
    if level == "similar":
        text = f"The target looks like the source: {seen}, and {test}."
    elif level == "moderate":
        text = (f"Moderate shift: {seen}, and {test}. Expect some loss of accuracy; "
                "adaptation may recover part of it.")
    else:
        text = (f"Strong shift: {seen}, and {test}. Expect the source model to degrade on "
                "the target.")
    measured = [r for r in per_class if r["proxy_a_distance"] is not None]
    if measured and level != "similar":
        worst = max(measured, key=lambda r: r["proxy_a_distance"])
        text += (f" The most shifted class is {worst['class']} (proxy A-distance "
                 f"{worst['proxy_a_distance']:.2f}).")
    return level, text
