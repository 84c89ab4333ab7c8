"""A real scikit-learn classifier that takes its time to fit, for tests that must catch a task
while it runs (progress in luigid, the run lock, the training resource cap)."""

from __future__ import annotations

import time

from sklearn.linear_model import LogisticRegression


class SlowClassifier(LogisticRegression):
    def __init__(self, fit_seconds: float = 5.0, C: float = 1.0, max_iter: int = 1000) -> None:
        super().__init__(C=C, max_iter=max_iter)
        self.fit_seconds = fit_seconds

    def fit(self, X, y, sample_weight=None):  # noqa: N803 (scikit-learn's signature)
        time.sleep(self.fit_seconds)
        return super().fit(X, y, sample_weight)
