"""Linear probes on frozen features: logistic regression with its regularisation chosen on a validation split.

Used as the papers use them: CLIP's linear-probe evaluation (L2, section 3.2), the sentiment neuron's L1 probe
(which also shows how few units carry the label, and how well the top unit alone does, thresholded), and DCGAN's
discriminator features (section 5.1).

The features protocol: a model offers frozen features through one method, ``features``, says what it reads in
``feature_input``: texts (``TextFeatures``: GPT, the mLSTM) or image tensors (``ImageFeatures``: CLIP, DCGAN's
discriminator, Image GPT), and names what the features are in ``feature_description`` (the mLSTM's "final cell
state"), which ``radford probe`` prints, records in ``probe.json`` and puts on its figure: two readouts of one model
probe very differently, so a figure means nothing without it. ``radford probe`` reads text models; image models are
probed from Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from radford.errors import RadfordError


class TextFeatures(Protocol):
    """A model whose features are of texts: ``(len(texts), D)`` floats, one row per text, whatever the batch;
    ``feature_description`` says which readout they are, in a few words ("final cell state", "final hidden state at
    the last token"). A subclass that changes the readout says so with its own description."""

    feature_input: Literal["texts"]
    feature_description: str

    def features(self, texts: Sequence[str]) -> Tensor: ...


class ImageFeatures(Protocol):
    """A model whose features are of images: ``(N, D)`` floats for the model's image tensor ``(N, ...)``;
    ``feature_description`` says which readout they are, as ``TextFeatures``'."""

    feature_input: Literal["images"]
    feature_description: str

    def features(self, images: Tensor) -> Tensor: ...


# Where a model's readout is computed: a class that overrides one of these changes what its features are.
FEATURE_METHODS = ("features", "feature_ids", "pooled_features")


def undescribed_features(cls: type) -> str | None:
    """Why ``cls`` breaks the features protocol's ``feature_description``, or None when it keeps it (or offers no
    features). It must name its features, and the name must come from the class that computes them or a subclass:
    one inherited from above an override of ``FEATURE_METHODS`` describes the parent's readout, not this one's."""
    if getattr(cls, "feature_input", None) is None:
        return None
    name = f"{cls.__module__}.{cls.__qualname__}"
    description = getattr(cls, "feature_description", None)
    if description is None:
        return f"{name} has feature_input = {cls.feature_input!r} but no feature_description naming its features"
    if not isinstance(description, property) and not (isinstance(description, str) and description.strip()):
        return f"{name}.feature_description must be a non-empty string, got {description!r}"
    mro = cls.__mro__
    computed = next((k for k, c in enumerate(mro) if any(m in vars(c) for m in FEATURE_METHODS)), None)
    described = next(k for k, c in enumerate(mro) if "feature_description" in vars(c))
    if computed is not None and described > computed:
        return (
            f"{name} computes its features in {mro[computed].__qualname__} but inherits "
            f"{mro[described].__qualname__}'s feature_description: give it its own"
        )
    return None


# The sweep of inverse regularisation strengths, as in the CLIP paper's probes (log-spaced).
DEFAULT_CS = tuple(float(c) for c in np.logspace(-3, 3, 13))


@dataclass
class ProbeResult:
    """A fitted probe and how it did: ``C`` won on validation; accuracies are on the split named."""

    classifier: LogisticRegression
    scaler: StandardScaler
    C: float
    val_accuracy: float
    test_accuracy: float

    @property
    def nonzero_weights(self) -> int:
        """Features with a non-zero weight for at least one class (an L1 probe's sparsity)."""
        return int(np.count_nonzero(np.abs(self.classifier.coef_).sum(axis=0)))

    @property
    def top_feature(self) -> int:
        """The feature with the largest absolute weight (summed over classes)."""
        return int(np.argmax(np.abs(self.classifier.coef_).sum(axis=0)))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.classifier.predict(self.scaler.transform(features))


def _checked(name: str, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        raise RadfordError(
            f"{name} split: expected features of shape (N, D) and N labels, got {features.shape} and {labels.shape}"
        )
    if len(features) == 0:
        raise RadfordError(f"{name} split is empty")
    return features, labels


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    penalty: Literal["l1", "l2"] = "l2",
    Cs: Sequence[float] = DEFAULT_CS,
    max_iter: int = 1000,
    seed: int = 0,
) -> ProbeResult:
    """Fit logistic regression on standardised ``train`` features for each C, keep the best on ``val``, score ``test``.

    Each split is ``(features (N, D), labels (N,))``. Features are standardised with the training split's mean and
    deviation, so one sweep of C suits features of any scale.
    """
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        _checked(name, *split) for name, split in (("train", train), ("val", val), ("test", test))
    )
    if len(np.unique(y_train)) < 2:
        raise RadfordError(f"train split has a single class ({y_train[0]!r}): a probe needs at least two")
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (scaler.transform(x) for x in (x_train, x_val, x_test))
    best: tuple[float, float, LogisticRegression] | None = None
    for C in Cs:
        # liblinear fits L1 exactly (true zeros); lbfgs is the fast choice for L2 and many classes.
        solver = "liblinear" if penalty == "l1" else "lbfgs"
        classifier = LogisticRegression(
            C=C, l1_ratio=1.0 if penalty == "l1" else 0.0, solver=solver, max_iter=max_iter, random_state=seed
        )
        classifier.fit(x_train, y_train)
        accuracy = float(classifier.score(x_val, y_val))
        if best is None or accuracy > best[0]:
            best = (accuracy, C, classifier)
    assert best is not None, "Cs is empty"
    val_accuracy, C, classifier = best
    return ProbeResult(classifier, scaler, C, val_accuracy, float(classifier.score(x_test, y_test)))


def split_indices(
    n: int, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test indices of ``n`` examples: a seeded shuffle, the first ``test_fraction`` for
    test, then ``val_fraction`` of the remainder for validation. The same arguments give the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    n_val = round((n - n_test) * val_fraction)
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


@dataclass(frozen=True)
class Threshold:
    """A one-feature classifier: the second class where ``sign * (value - threshold) > 0``, else the first."""

    threshold: float
    sign: int

    @classmethod
    def fit(cls, values: np.ndarray, y: np.ndarray) -> Threshold:
        """The cut and direction that classify the most of ``values`` right, for 0/1 labels ``y``."""
        order = np.argsort(values, kind="stable")
        v, y = values[order], y[order]
        ones_below = np.concatenate([[0], np.cumsum(y)])  # ones among the k smallest, for k = 0..n
        zeros_below = np.arange(len(y) + 1) - ones_below
        up = zeros_below + (ones_below[-1] - ones_below)  # correct when the k smallest are called 0
        down = ones_below + (zeros_below[-1] - zeros_below)  # ... when they are called 1
        cuts = np.concatenate([[True], v[1:] > v[:-1], [True]])  # between distinct values only
        k_up, k_down = (int(np.argmax(np.where(cuts, right, -1))) for right in (up, down))
        k, sign = (k_up, 1) if up[k_up] >= down[k_down] else (k_down, -1)
        bounds = np.concatenate([[-np.inf], v, [np.inf]])
        low, high = bounds[k], bounds[k + 1]
        threshold = low if np.isinf(high) else high if np.isinf(low) else (low + high) / 2
        return cls(float(threshold), sign)

    def accuracy(self, values: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((self.sign * (values - self.threshold) > 0) == (y == 1)))
