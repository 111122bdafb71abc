"""The macro-F1-optimal class-weighted argmax (oncoflow.metrics.decision)."""

from __future__ import annotations

import numpy as np
import pytest

from oncoflow.errors import ModelError
from oncoflow.metrics.classification import macro_f1
from oncoflow.metrics.decision import macro_f1_weights, weighted_argmax


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced 3-class mechanism (priors 0.8 / 0.15 / 0.05) and its exact posterior."""
    priors = np.array([0.8, 0.15, 0.05])
    means = np.array([0.0, 1.0, 2.0])
    y = rng.choice(3, size=n, p=priors)
    x = rng.normal(means[y], 1.0)
    log_post = -0.5 * (x[:, None] - means[None, :]) ** 2 + np.log(priors)[None, :]
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    return y, post / post.sum(axis=1, keepdims=True)


def test_weights_beat_argmax_on_fresh_draws_of_an_imbalanced_mechanism() -> None:
    y, post = _draw(np.random.default_rng(0), 20_000)
    weights = macro_f1_weights(y, post)
    assert weights[0] == 1.0
    # the rare classes are predicted more often than by the accuracy-optimal argmax
    assert weights[1] > 1.0
    assert weights[2] > 1.0
    y_new, post_new = _draw(np.random.default_rng(1), 20_000)
    argmax_f1 = macro_f1(y_new, post_new.argmax(axis=1), labels=[0, 1, 2])
    weighted_f1 = macro_f1(y_new, weighted_argmax(post_new, weights), labels=[0, 1, 2])
    assert weighted_f1 > argmax_f1 + 0.03


def test_balanced_separable_classes_keep_the_plain_argmax() -> None:
    y = np.repeat([0, 1, 2], 50)
    post = np.full((150, 3), 0.1)
    post[np.arange(150), y] = 0.8
    weights = macro_f1_weights(y, post)
    assert np.array_equal(weighted_argmax(post, weights), y)
    assert np.allclose(weights, 1.0)


def test_shapes_and_labels_are_checked() -> None:
    with pytest.raises(ModelError, match="K weights"):
        weighted_argmax(np.ones((4, 3)), [1.0, 1.0])
    with pytest.raises(ModelError, match=r"0\.\.2"):
        macro_f1_weights([0, 3], np.ones((2, 3)) / 3)
