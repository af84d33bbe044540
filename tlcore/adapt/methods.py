"""Domain adaptation methods on feature vectors, their unsupervised scores, and their fold.

Every method is a skada pipeline (`make_da_pipeline`): the method's adapter and
a scikit-learn `LogisticRegression` trained on the (adapted, or reweighted)
labeled source rows, with the unlabeled target rows given to the adapter. Both
domains are divided by one number, the standard deviation of every source
value (`Fitted.scale`), so that the classifier's regularisation means the same
on any base; no per-feature standardisation, which would carry the target's
statistics into every method (or, from the source alone, blow up the features
that barely vary on the source). `none` is the baseline: the same classifier on
the source rows alone.

Choosing a method without target labels: each fitted pipeline is scored by
skada's unsupervised scorers (`SCORERS`); the method with the best
`DEFAULT_SCORER` is chosen: circular validation (Bruzzone & Marconcini, 2010),
which trains the method again from the target with its own predicted labels
and scores that reverse model on the labeled source. In trials on
Fashion-MNIST under four changes of domain (`bench/adapt.py`), the scores of
target confidence (MaNo, prediction entropy, soft neighbourhood density)
preferred TCA, whose collapsed, over-confident predictions were the worst on
the hidden labels; circular validation ranked it last. Importance-weighted
validation and deep embedded validation are not computed: the first needs
density estimates that underflow in hundreds of dimensions, the second gave
unstable scores in trials.

`fold` turns a fitted pipeline into one affine map, features -> logits: for
target rows every method here is affine (mappings move source rows only,
reweighting changes only training, subspace alignment and linear TCA project),
so the map is read off by probing the pipeline's decision function and checked
on the target rows.

skada is imported inside functions: importing this module stays cheap, and the
environment variables below keep POT from loading TensorFlow, JAX, PyTorch or
CuPy.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tlcore.errors import ConfigError, TLCoreError

for _backend in ("TENSORFLOW", "JAX", "PYTORCH", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")

# name -> (label, what it does); "none" first: the baseline every gain is measured from.
METHODS = {
    "none": ("No adaptation", "Logistic regression on the source features alone."),
    "reweight": ("Reweighting", "Source rows weighted by how target-like a domain classifier "
                                "finds them (instance-based transfer)."),
    "coral": ("CORAL", "Source features whitened and recoloured with the target covariance."),
    "ot": ("Optimal transport", "Source features moved onto the target by the linear "
                                "(Gaussian) optimal-transport map."),
    "subspace": ("Subspace alignment", "Source principal subspace aligned onto the target's."),
    "tca": ("TCA", "Transfer component analysis (linear kernel): a shared subspace where the "
                   "domains' means match."),
}
DEFAULT_METHODS = tuple(METHODS)
# name -> what it measures; every score is "higher is better".
SCORERS = {
    "circular": "circular validation: source accuracy of a model trained back from the "
                "target's predicted labels",
    "mano": "MaNo: the normalised confidence of the target predictions",
    "entropy": "minus the mean entropy of the target predictions",
    "snd": "soft neighbourhood density of the target predictions",
    "mixval": "MixVal: agreement on mixed target samples",
}
DEFAULT_SCORER = "circular"
COMPONENTS = 64  # subspace alignment and TCA
C = 0.1  # inverse regularisation of every logistic regression
MAX_ITER = 500
TOL = 1e-3
FOLD_TOLERANCE = 1e-4  # largest probability difference a folded map may show


@dataclass
class Fitted:
    """One method fitted on source and target rows.

    Attributes:
        name: The method.
        pipeline: The fitted skada pipeline.
        scale: What both domains were divided by before the pipeline.
        probs: Its class probabilities on the target rows, columns = the run's classes.
        scores: Unsupervised scores by scorer name (None where a scorer failed).
        seconds: Fitting and scoring time.
    """

    name: str
    pipeline: Any
    scale: float
    probs: np.ndarray
    scores: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The pipeline's probabilities on target features `x` (columns: classes with rows)."""
        return self.pipeline.predict_proba(np.asarray(x, np.float64) / self.scale)


def check_methods(names: list[str] | tuple[str, ...] | None) -> list[str]:
    """The methods to run, in `METHODS` order, always with "none" (the baseline).

    Raises:
        ConfigError: naming an unknown method and the known ones.
    """
    names = list(names or DEFAULT_METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ConfigError(f"Unknown adaptation method {unknown[0]!r}; choose from "
                          f"{', '.join(METHODS)}. Received: {', '.join(names)}")
    return [n for n in METHODS if n in names or n == "none"]


def check_scorer(name: str) -> str:
    """`name` if it is a known scorer.

    Raises:
        ConfigError: naming the known scorers.
    """
    if name not in SCORERS:
        raise ConfigError(f"Unknown scorer {name!r}; choose from {', '.join(SCORERS)}. "
                          f"Received: {name!r}")
    return name


def _pipeline(name: str, seed: int, n_source: int, n_target: int) -> Any:
    import skada
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=C, max_iter=MAX_ITER, tol=TOL)
    components = max(2, min(COMPONENTS, n_source, n_target))
    if name in ("none", "coral", "ot", "subspace", "tca"):
        adapter = {
            "none": None,
            "coral": lambda: skada.CORALAdapter(),
            # Shrinkage towards the identity: a few hundred rows cannot estimate a full
            # covariance in hundreds of dimensions.
            "ot": lambda: skada.LinearOTMappingAdapter(reg=1.0),
            "subspace": lambda: skada.SubspaceAlignmentAdapter(n_components=components,
                                                               random_state=seed),
            "tca": lambda: skada.TransferComponentAnalysisAdapter(
                kernel="linear", n_components=components, mu=1.0),
        }[name]
        return skada.make_da_pipeline(*([adapter()] if adapter else []), classifier)
    # A strongly regularised domain classifier: a sharp one separates the domains
    # completely, and its weights then rest on a handful of source rows.
    reweight = skada.DiscriminatorReweightAdapter(
        domain_classifier=LogisticRegression(C=0.001, max_iter=MAX_ITER, tol=TOL))
    return skada.make_da_pipeline(reweight, classifier.set_fit_request(sample_weight=True))


def _scorers(seed: int) -> dict[str, Any]:
    from skada.metrics import (
        CircularValidation,
        MaNoScorer,
        MixValScorer,
        PredictionEntropyScorer,
        SoftNeighborhoodDensity,
    )

    return {"circular": CircularValidation(), "mano": MaNoScorer(),
            "entropy": PredictionEntropyScorer(),
            "snd": SoftNeighborhoodDensity(), "mixval": MixValScorer(random_state=seed)}


def fit_methods(names: list[str], xs: np.ndarray, ys: np.ndarray, xt: np.ndarray,
                num_classes: int, seed: int = 0,
                progress: Any = None) -> list[Fitted]:
    """Fit and score each method on source rows `(xs, ys)` and unlabeled target rows `xt`.

    Args:
        names: Methods (`check_methods`).
        xs: Source features `(n, d)`.
        ys: Source labels, indices of the run's classes.
        xt: Target features `(m, d)`.
        num_classes: The run's number of classes (columns of `Fitted.probs`).
        seed: Seed of every random step.
        progress: Optional callback `(done, total, method)` after each method.

    Returns:
        One `Fitted` per method, in `names` order.
    """
    scale = float(np.std(xs)) or 1.0
    xs, xt = np.asarray(xs, np.float64) / scale, np.asarray(xt, np.float64) / scale
    x = np.vstack([xs, xt])
    domain = np.r_[np.ones(len(xs), int), -np.ones(len(xt), int)]
    masked = np.r_[ys, -np.ones(len(xt), int)]  # skada's mark of an unknown label
    scorers = _scorers(seed)
    out = []
    for i, name in enumerate(names):
        began = time.monotonic()
        pipe = _pipeline(name, seed, len(xs), len(xt))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes of the inner solvers
            if name == "none":
                pipe.fit(xs, ys, sample_domain=np.ones(len(xs), int))
            else:
                pipe.fit(x, masked, sample_domain=domain)
            scores = {}
            for key, scorer in scorers.items():
                try:
                    value = float(scorer(pipe, x, masked, sample_domain=domain))
                except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                    value = float("nan")
                scores[key] = value if np.isfinite(value) else None
            probs = _columns(pipe.predict_proba(xt), np.unique(ys), num_classes)
        out.append(Fitted(name, pipe, scale, probs, scores, time.monotonic() - began))
        if progress:
            progress(i + 1, len(names), name)
    return out


def _columns(values: np.ndarray, present: np.ndarray, num_classes: int,
             fill: float = 0.0) -> np.ndarray:
    """`values` whose columns are the classes `present`, widened to every class."""
    out = np.full((len(values), num_classes), fill, dtype=np.float64)
    out[:, present] = values
    return out


def choose(fitted: list[Fitted], scorer: str = DEFAULT_SCORER) -> Fitted:
    """The method with the best `scorer` score (the earlier one on a tie; "none" without scores)."""
    scored = [f for f in fitted if f.scores.get(scorer) is not None]
    if not scored:
        return next(f for f in fitted if f.name == "none")
    return max(scored, key=lambda f: f.scores[scorer])


def fold(fitted: Fitted, ys: np.ndarray, xt: np.ndarray,
         num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The fitted pipeline on target rows as one affine map: logits = x @ kernel + bias.

    Softmax of those logits is the pipeline's `predict_proba` on target rows. Read
    off by probing the decision function at the origin and along each axis, then
    checked on `xt`.

    Returns:
        `(kernel (d, num_classes), bias (num_classes,))`, float64. A class with no
        source rows gets a bias so low that it is never predicted.

    Raises:
        TLCoreError: if the pipeline is not affine on target rows (it cannot be
            folded into a Dense layer).
    """
    pipe, dim = fitted.pipeline, xt.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        origin = np.atleast_2d(pipe.decision_function(np.zeros((1, dim))))
        axes = np.atleast_2d(pipe.decision_function(np.eye(dim)))
        expected = fitted.predict_proba(xt)
    if origin.shape[1] == 1:  # two classes: one logit z, the same softmax as [0, z]
        origin, axes = np.hstack([np.zeros_like(origin), origin]), np.hstack(
            [np.zeros_like(axes), axes])
    present = np.unique(ys)
    kernel = _columns(axes - origin, present, num_classes) / fitted.scale
    bias = _columns(origin, present, num_classes, fill=-1e4)[0]
    logits = np.asarray(xt, np.float64) @ kernel + bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    gap = float(np.max(np.abs(probs[:, present] - expected))) if len(xt) else 0.0
    if not gap <= FOLD_TOLERANCE:
        raise TLCoreError(f"Method {fitted.name!r} is not affine on target features (its "
                          f"probabilities differ by {gap:.2g} from an affine map), so it cannot "
                          "become a Keras layer; choose another method with --methods.")
    return kernel, bias
