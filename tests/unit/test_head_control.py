"""New heads on frozen features (oncoflow.segmentation.head_control), without nnU-Net."""

from __future__ import annotations

import numpy as np

from oncoflow.metrics.classification import macro_auc
from oncoflow.segmentation.head_control import head_probabilities, train_head


def _features(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled vectors of 3 classes whose first two features carry the class."""
    y = rng.choice(3, size=n, p=[0.25, 0.42, 0.33])
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 1.5 * y
    x[:, 1] -= 1.0 * (y == 1)
    return x, y


def test_a_head_learns_the_class_and_a_permuted_head_stays_at_chance() -> None:
    rng = np.random.default_rng(0)
    x, y = _features(rng, 90)
    x_new, y_new = _features(rng, 300)
    real = train_head(x, y, 3, hidden=32, dropout=0.3, seed=1)
    assert macro_auc(y_new, head_probabilities(real, x_new)) > 0.8
    aucs = []
    for r in range(5):
        permuted = np.random.default_rng([7, r]).permutation(y)
        head = train_head(x, permuted, 3, hidden=32, dropout=0.3, seed=r)
        probs = head_probabilities(head, x_new)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        aucs.append(macro_auc(y_new, probs))
    assert abs(float(np.mean(aucs)) - 0.5) < 0.07
