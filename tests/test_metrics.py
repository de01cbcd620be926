"""birdtpu.metrics against independent references: scikit-learn, the BirdCLEF 2023 notebook and
2024 scorer, and the Freesound 2019 per-sample lwlrap code (written out here)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from birdtpu import metrics as M  # noqa: E402
from birdtpu.errors import DataError  # noqa: E402
from birdtpu.metrics import streaming as S  # noqa: E402

TOL = 1e-9
SEEDS = range(8)


def random_case(seed, ties=False):
    """(y_true, y_score) of random size; with `ties`, scores rounded to one decimal."""
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(20, 120)), int(rng.integers(3, 15))
    y = (rng.random((n, c)) < rng.uniform(0.05, 0.4)).astype(np.int64)
    y[rng.integers(n), :] = 0  # a row without labels
    s = rng.random((n, c))
    return y, np.round(s, 1) if ties else s


# ----------------------------------------------------------------- independent references


def notebook_padded_cmap(solution: pd.DataFrame, submission: pd.DataFrame, padding_factor=5):
    """The BirdCLEF 2023 scoring notebook's padded_cmap."""
    solution = solution.drop(["row_id"], axis=1, errors="ignore")
    submission = submission.drop(["row_id"], axis=1, errors="ignore")
    new_rows = pd.DataFrame(
        [[1] * len(solution.columns)] * padding_factor, columns=solution.columns
    )
    padded_solution = pd.concat([solution, new_rows]).reset_index(drop=True)
    padded_submission = pd.concat([submission, new_rows]).reset_index(drop=True)
    return skm.average_precision_score(
        padded_solution.values, padded_submission.values, average="macro"
    )


def kaggle_2024_score(solution: pd.DataFrame, submission: pd.DataFrame):
    """The BirdCLEF 2024 scorer: macro ROC-AUC over the columns whose truth sums above 0."""
    solution, submission = solution.drop(columns="row_id"), submission.drop(columns="row_id")
    sums = solution.sum(axis=0)
    scored = list(sums[sums > 0].index.values)
    return skm.roc_auc_score(solution[scored].values, submission[scored].values, average="macro")


def colab_one_sample(scores, truth):
    """Freesound 2019 Colab: precision at each positive class of one sample (ties by sort order)."""
    num_classes = scores.shape[0]
    pos = np.flatnonzero(truth > 0)
    if not len(pos):
        return pos, np.zeros(0)
    retrieved = np.argsort(scores)[::-1]
    rankings = np.zeros(num_classes, dtype=int)
    rankings[retrieved] = range(num_classes)
    retrieved_true = np.zeros(num_classes, dtype=bool)
    retrieved_true[rankings[pos]] = True
    hits = np.cumsum(retrieved_true)
    return pos, hits[rankings[pos]] / (1 + rankings[pos].astype(float))


def colab_per_class_lwlrap(truth, scores):
    """Freesound 2019 Colab: per-class lwlrap and class weights."""
    precisions = np.zeros(scores.shape)
    for i in range(scores.shape[0]):
        pos, prec = colab_one_sample(scores[i], truth[i])
        precisions[i, pos] = prec
    labels = np.sum(truth > 0, axis=0)
    return precisions.sum(axis=0) / np.maximum(1, labels), labels / float(labels.sum())


def frame(values, columns, ids=None):
    df = pd.DataFrame(values, columns=columns)
    df.insert(0, "row_id", ids if ids is not None else [f"r{i}" for i in range(len(df))])
    return df


# ----------------------------------------------------------------- randomised agreement


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_padded_cmap_matches_notebook(seed, ties):
    y, s = random_case(seed, ties)
    cols = [f"c{i}" for i in range(y.shape[1])]
    assert abs(M.padded_cmap(y, s) - notebook_padded_cmap(frame(y, cols), frame(s, cols))) < TOL


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_macro_roc_auc_matches_sklearn_and_2024_scorer(seed, ties):
    y, s = random_case(seed, ties)
    y[:, 0] = 0  # a class with no positives: skipped by both
    cols = [f"c{i}" for i in range(y.shape[1])]
    ref = kaggle_2024_score(frame(y, cols), frame(s, cols))
    assert abs(M.macro_roc_auc(y, s) - ref) < TOL
    assert abs(M.birdclef2024_score(frame(y, cols), frame(s, cols)) - ref) < TOL
    per_class = M.per_class_roc_auc(y, s)
    assert np.isnan(per_class[0])
    for c in range(1, y.shape[1]):
        assert abs(per_class[c] - skm.roc_auc_score(y[:, c], s[:, c])) < TOL


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_macro_pr_auc_matches_sklearn(seed, ties):
    y, s = random_case(seed, ties)
    y[:, 1] = 0
    keep = y.sum(axis=0) > 0
    ref = skm.average_precision_score(y[:, keep], s[:, keep], average="macro")
    assert abs(M.macro_pr_auc(y, s) - ref) < TOL


@pytest.mark.parametrize("seed", SEEDS)
def test_lwlrap_matches_freesound_colab(seed):
    y, s = random_case(seed)  # continuous scores: the Colab's tie order does not matter
    y[:, 0] = 0
    per_class, weights = M.lwlrap_per_class(y, s)
    ref_per_class, ref_weights = colab_per_class_lwlrap(y, s)
    np.testing.assert_allclose(per_class, ref_per_class, rtol=0, atol=TOL)
    np.testing.assert_allclose(weights, ref_weights, rtol=0, atol=TOL)
    assert abs(M.lwlrap(y, s) - np.sum(ref_per_class * ref_weights)) < TOL


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_lwlrap_is_label_weighted_sklearn_lrap(seed, ties):
    """The Colab's second form: LRAP weighted by each sample's label count (ties as sklearn)."""
    y, s = random_case(seed, ties)
    counts = y.sum(axis=1)
    keep = counts > 0
    ref = skm.label_ranking_average_precision_score(y[keep], s[keep], sample_weight=counts[keep])
    assert abs(M.lwlrap(y, s) - ref) < TOL


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_lrap_matches_sklearn(seed, ties):
    y, s = random_case(seed, ties)
    y[0] = 1  # a row with every label
    assert abs(M.lrap(y, s) - skm.label_ranking_average_precision_score(y, s)) < TOL


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_accuracy_matches_sklearn_single_label(seed, k):
    rng = np.random.default_rng(seed)
    n, c = 80, 7
    labels = rng.integers(c, size=n)
    s = rng.random((n, c))
    ref = skm.top_k_accuracy_score(labels, s, k=k, labels=range(c))
    assert abs(M.top_k_accuracy(np.eye(c)[labels], s, k=k) - ref) < TOL


def test_lwlrap_and_lrap_differ_when_label_counts_differ():
    y = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 0]])
    s = np.array([[0.1, 0.5, 0.2], [0.3, 0.2, 0.1], [0.2, 0.9, 0.1]])
    # row 0: label 0 ranked 3rd -> 1/3; row 1: all labels -> 1, 1, 1; row 2: 1
    assert M.lwlrap(y, s) == pytest.approx((1 / 3 + 3 + 1) / 5, abs=TOL)
    assert M.lrap(y, s) == pytest.approx((1 / 3 + 1 + 1) / 3, abs=TOL)


# ----------------------------------------------------------------- edge cases


def test_class_without_positives():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.1, 0.4]])
    assert M.macro_roc_auc(y, s) == pytest.approx(1.0, abs=TOL)  # class 1 skipped
    assert M.macro_pr_auc(y, s) == pytest.approx(1.0, abs=TOL)
    # padding: class 1 has only the 5 padded positives, tied at 1.0 with nothing above -> AP 1
    assert M.padded_cmap(y, s) == pytest.approx(1.0, abs=TOL)
    s_bad = s.copy()
    s_bad[:, 1] = 1.0  # every row tied with the padding: precision 5 / 9 for class 1
    assert M.padded_cmap(y, s_bad) == pytest.approx((1 + 5 / 9) / 2, abs=TOL)
    per_class, weights = M.lwlrap_per_class(y, s)
    assert per_class[1] == 0 and weights[1] == 0


def test_ties():
    y = np.array([[1], [0], [1], [0]])
    tied = np.full((4, 1), 0.5)
    assert M.macro_roc_auc(y, tied) == pytest.approx(0.5, abs=TOL)
    assert M.macro_pr_auc(y, tied) == pytest.approx(0.5, abs=TOL)  # one step at prevalence
    # lwlrap, ties count against the label: row [1, 0, 0] tied at 0.5 -> precision 1/3
    assert M.lwlrap([[1, 0, 0]], [[0.5, 0.5, 0.5]]) == pytest.approx(1 / 3, abs=TOL)
    assert M.lwlrap([[1, 1, 0]], [[0.5, 0.5, 0.1]]) == pytest.approx(1.0, abs=TOL)
    # top-k: a true label tied at the k-th score counts as a hit
    assert M.top_k_accuracy([[0, 1, 0]], [[0.9, 0.5, 0.5]], k=2) == 1.0
    assert M.top_k_accuracy([[0, 1, 0]], [[0.9, 0.5, 0.5]], k=1) == 0.0


def test_one_sample():
    y, s = np.array([[1, 0, 1]]), np.array([[0.2, 0.9, 0.4]])
    with pytest.raises(DataError, match="no class has both"):
        M.macro_roc_auc(y, s)
    assert M.lwlrap(y, s) == pytest.approx((1 / 2 + 2 / 3) / 2, abs=TOL)  # 0.4 -> 1/2, 0.2 -> 2/3
    ref = notebook_padded_cmap(frame(y, list("abc")), frame(s, list("abc")))
    assert M.padded_cmap(y, s) == pytest.approx(ref, abs=TOL)
    assert M.top_k_accuracy(y, s, k=2) == 1.0


@pytest.mark.parametrize("fn", [M.lwlrap, M.macro_pr_auc, M.macro_roc_auc, M.top_k_accuracy])
def test_no_positive_anywhere_is_an_error(fn):
    with pytest.raises(DataError):
        fn(np.zeros((4, 3)), np.random.default_rng(0).random((4, 3)))


@pytest.mark.parametrize(
    "y, s, message",
    [
        ([[1, 0]], [[0.1, np.nan]], "not finite at row 0, column 1"),
        ([[1, 0.5]], [[0.1, 0.2]], "row 0, column 1 is 0.5"),
        ([[1, 0]], [[0.1, 0.2, 0.3]], r"of one shape; got \(1, 2\) and \(1, 3\)"),
        ([1, 0], [0.1, 0.2], "2-D"),
    ],
)
def test_bad_arrays(y, s, message):
    with pytest.raises(DataError, match=message):
        M.lwlrap(y, s)


def test_metrics_registry():
    from birdtpu.commands.evaluate import METRIC_NAMES

    assert set(M.METRICS) == set(METRIC_NAMES)
    y, s = random_case(0)
    for name, fn in M.METRICS.items():
        assert 0.0 <= fn(y, s) <= 1.0, name


# ----------------------------------------------------------------- tables and files


def test_align_tables_reorders_rows_and_columns():
    y, s = random_case(3)
    cols = [f"c{i}" for i in range(y.shape[1])]
    truth, pred = frame(y, cols), frame(s, cols)
    shuffled = pred.sample(frac=1, random_state=0)[["row_id", *cols[::-1]]]
    y2, s2, classes = M.align_tables(truth, shuffled)
    assert classes == cols
    np.testing.assert_array_equal(s2, s)
    assert M.lwlrap(y2, s2) == M.lwlrap(y, s)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t, p: (t, p.drop(index=2)), r"pred.csv: row_id 'r2' of truth.csv is missing"),
        (lambda t, p: (t.drop(index=2), p), r"truth.csv: row_id 'r2' of pred.csv is missing"),
        (lambda t, p: (t, p.drop(columns="b")), r"pred.csv: column 'b' of truth.csv is missing"),
        (lambda t, p: (t, p.assign(z=0.5)), r"truth.csv: column 'z' of pred.csv is missing"),
        (
            lambda t, p: (t, p.assign(b=[0.1, np.nan, 0.3, 0.4])),
            r"pred.csv: row 'r1', column 'b': nan",
        ),
        (
            lambda t, p: (t, p.assign(a=["x", 0.2, 0.3, 0.4])),
            r"pred.csv: row 'r0', column 'a': 'x'",
        ),
        (
            lambda t, p: (t.assign(a=[1, 2, 0, 0]), p),
            r"truth.csv: row 'r1', column 'a': truth must be 0 or 1",
        ),
        (
            lambda t, p: (t, p.assign(row_id=["r0", "r0", "r2", "r3"])),
            r"pred.csv: row_id 'r0' appears more",
        ),
        (lambda t, p: (t.drop(columns="row_id"), p), r"truth.csv: no `row_id` column"),
    ],
)
def test_align_tables_errors_name_file_row_and_column(edit, message):
    truth = frame([[1, 0], [0, 1], [1, 1], [0, 0]], ["a", "b"])
    pred = frame([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]], ["a", "b"])
    truth, pred = edit(truth, pred)
    with pytest.raises(DataError, match=message):
        M.align_tables(truth, pred, ("truth.csv", "pred.csv"))


def test_file_level_max_and_mean():
    ids = ["soundscape_1_5", "soundscape_1_10", "XC_2_5", "XC_2_10"]
    df = frame([[0.1, 0.9], [0.5, 0.1], [0.2, 0.2], [0.4, 0.0]], ["a", "b"], ids)
    out = M.file_level(df, "max")
    assert list(out["row_id"]) == ["XC_2", "soundscape_1"]
    np.testing.assert_allclose(out[["a", "b"]].to_numpy(), [[0.4, 0.2], [0.5, 0.9]])
    np.testing.assert_allclose(
        M.file_level(df, "mean")[["a", "b"]].to_numpy(), [[0.3, 0.1], [0.3, 0.5]]
    )


@pytest.mark.parametrize("bad_id", ["soundscape", "soundscape_1_end"])
def test_file_level_rejects_bad_row_ids(bad_id):
    df = frame([[0.1], [0.2]], ["a"], ["s_5", bad_id])
    with pytest.raises(
        DataError, match=f"oof.csv: row id '{bad_id}' is not <recording>_<end second>"
    ):
        M.file_level(df, "max", "oof.csv")


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match="missing.csv: file not found"):
        M.read_table(str(tmp_path / "missing.csv"))
    (tmp_path / "noid.csv").write_text("id,a\nx,1\n")
    with pytest.raises(DataError, match="noid.csv: no `row_id` column"):
        M.read_table(str(tmp_path / "noid.csv"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: not a readable CSV"):
        M.read_table(str(tmp_path / "empty.csv"))


# ----------------------------------------------------------------- Keras metrics, both backends

KERAS_TOL = 1e-6  # float32 state and arithmetic (TPUs have no float64) against float64 NumPy


def keras_cases():
    return [
        (lambda c: S.MacroROCAUC(c, capacity=256), M.macro_roc_auc),
        (lambda c: S.MacroPRAUC(c, capacity=256), M.macro_pr_auc),
        (lambda c: S.PaddedCMAP(c, capacity=256), M.padded_cmap),
        (lambda c: S.LWLRAP(c), M.lwlrap),
        (lambda c: S.TopKAccuracy(3), lambda y, s: M.top_k_accuracy(y, s, k=3)),
    ]


def float32_case(seed, n=203, c=11):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.2).astype(np.float32)
    s = rng.random((n, c)).astype(np.float32)
    s[: n // 3] = np.round(s[: n // 3], 1)  # ties
    y[:, 0] = 0  # a class without positives
    return y, s


@pytest.mark.backends
@pytest.mark.parametrize("make, reference", keras_cases())
def test_keras_metric_in_batches_equals_numpy(make, reference):
    y, s = float32_case(1)
    metric = make(y.shape[1])
    for i in range(0, len(y), 16):  # uneven last batch
        metric.update_state(y[i : i + 16], s[i : i + 16])
    assert float(metric.result()) == pytest.approx(reference(y, s), abs=KERAS_TOL)
    metric.reset_state()
    metric.update_state(y[:50], s[:50])
    assert float(metric.result()) == pytest.approx(reference(y[:50], s[:50]), abs=KERAS_TOL)


@pytest.mark.backends
@pytest.mark.parametrize("make, reference", keras_cases())
def test_keras_metric_zero_weight_rows_are_ignored(make, reference):
    y, s = float32_case(2)
    weights = (np.arange(len(y)) % 3 != 0).astype(np.float32)
    metric = make(y.shape[1])
    for i in range(0, len(y), 32):
        metric.update_state(y[i : i + 32], s[i : i + 32], sample_weight=weights[i : i + 32])
    keep = weights > 0
    assert float(metric.result()) == pytest.approx(reference(y[keep], s[keep]), abs=KERAS_TOL)


@pytest.mark.backends
@pytest.mark.parametrize(
    "make, per_class",
    [
        (lambda c: S.MacroROCAUC(c, capacity=256), M.per_class_roc_auc),
        (lambda c: S.MacroPRAUC(c, capacity=256), M.per_class_average_precision),
    ],
)
def test_keras_metric_masked_labels_are_left_out_of_their_class_only(make, per_class):
    """A (rows, classes) weight of 0 removes one label (a Rainforest fp row's unknown classes)
    from its class's ranking: each class is scored on the rows where it is known."""
    y, s = float32_case(4)
    mask = (np.random.default_rng(5).random(y.shape) > 0.3).astype(np.float32)
    metric = make(y.shape[1])
    for i in range(0, len(y), 32):
        metric.update_state(y[i : i + 32], s[i : i + 32], sample_weight=mask[i : i + 32])
    known = [mask[:, c] > 0 for c in range(y.shape[1])]
    ref = [per_class(y[k, c : c + 1], s[k, c : c + 1])[0] for c, k in enumerate(known)]
    assert float(metric.result()) == pytest.approx(np.nanmean(ref), abs=KERAS_TOL)


@pytest.mark.backends
def test_score_buffer_overflow_is_nan_not_silent():
    y, s = float32_case(3, n=40)
    metric = S.MacroROCAUC(y.shape[1], capacity=32)
    metric.update_state(y[:30], s[:30])
    assert np.isfinite(float(metric.result()))
    metric.update_state(y[30:], s[30:])
    assert np.isnan(float(metric.result()))


@pytest.mark.backends
@pytest.mark.parametrize("make, _", keras_cases())
def test_keras_metric_serializes(make, _):
    metric = make(7)
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(clone) is type(metric) and clone.get_config() == metric.get_config()
    assert keras.saving.get_registered_name(type(metric)).startswith("birdtpu>")


@pytest.mark.backends
@pytest.mark.parametrize("jit", [False, True])
def test_keras_metrics_in_compile_and_evaluate(jit):
    y, s = float32_case(4)
    c = y.shape[1]
    model = keras.Sequential([keras.Input((c,)), keras.layers.Identity()])
    model.compile(
        loss="binary_crossentropy",
        jit_compile=jit,
        metrics=[S.MacroROCAUC(c, capacity=256), S.PaddedCMAP(c, capacity=256), S.LWLRAP(c)],
    )
    logs = model.evaluate(s, y, batch_size=32, return_dict=True, verbose=0)
    assert logs["macro_roc_auc"] == pytest.approx(M.macro_roc_auc(y, s), abs=KERAS_TOL)
    assert logs["padded_cmap"] == pytest.approx(M.padded_cmap(y, s), abs=KERAS_TOL)
    assert logs["lwlrap"] == pytest.approx(M.lwlrap(y, s), abs=KERAS_TOL)


@pytest.mark.backends
def test_keras_metrics_under_jax_data_parallel():
    """Under JAX DataParallel a metric sees the global batch: one buffer segment, same numbers."""
    if keras.backend.backend() != "jax":
        pytest.skip("DataParallel over host devices is the JAX backend's")
    import jax

    devices = jax.devices("cpu")
    if len(devices) < 2:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2")
    y, s = float32_case(5, n=192)
    c = y.shape[1]
    with keras.distribution.DataParallel(devices=devices[:2]).scope():
        metrics = [S.MacroROCAUC(c, capacity=256), S.MacroPRAUC(c, capacity=256), S.LWLRAP(c)]
        model = keras.Sequential([keras.Input((c,)), keras.layers.Identity()])
        model.compile(loss="binary_crossentropy", jit_compile=True, metrics=metrics)
        logs = model.evaluate(s, y, batch_size=32, return_dict=True, verbose=0)
    for name in ("macro_roc_auc", "macro_pr_auc", "lwlrap"):
        assert logs[name] == pytest.approx(M.METRICS[name](y, s), abs=KERAS_TOL), name
