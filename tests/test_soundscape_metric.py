"""`soundscape_scores`: the window macro ROC-AUC and how many classes it averages, by hand."""

import numpy as np
import pytest

from birdtpu.errors import DataError
from birdtpu.metrics.scores import macro_roc_auc, soundscape_scores


def test_soundscape_scores_skip_classes_without_a_call():
    y = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0]])
    s = np.array([[0.9, 0.1, 0.1], [0.2, 0.3, 0.5], [0.4, 0.2, 0.5], [0.3, 0.4, 0.2]])
    # class 0: positives 0.9, 0.3 over negatives 0.2, 0.4 -> 3 of 4 pairs = 0.75
    # class 1: no positive window -> skipped
    # class 2: positive 0.5 over 0.1, 0.5 (tie: 1/2), 0.2 -> 2.5 / 3
    scores = soundscape_scores(y, s)
    assert scores["classes_scored"] == 2
    assert scores["window_macro_auc"] == pytest.approx((0.75 + 2.5 / 3) / 2)
    assert scores["window_macro_auc"] == pytest.approx(macro_roc_auc(y, s))


def test_soundscape_scores_without_any_scorable_class_says_so():
    with pytest.raises(DataError, match="no class has both a positive and a negative window"):
        soundscape_scores(np.zeros((3, 2)), np.ones((3, 2)))
