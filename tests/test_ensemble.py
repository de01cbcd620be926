"""birdtpu.ensemble: blends, the stacker model, its save/apply path and out-of-fold comparisons."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from birdtpu import ensemble as E  # noqa: E402
from birdtpu.errors import DataError  # noqa: E402
from birdtpu.metrics import lwlrap, macro_roc_auc  # noqa: E402


def synthetic_oof(seed, n=240, c=5, good=3.0, noisy=0.4, noise=2.0):
    """Truth and the out-of-fold probabilities of a good and a noisy model: y (n, c), x (n, c, 2)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.2).astype(np.float64)
    y[np.arange(n), rng.integers(c, size=n)] = 1  # every row has a label

    def model(signal):
        return 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, noise, y.shape))))

    return y, np.stack([model(good), model(noisy)], axis=-1).astype(np.float32)


def table(values, classes, ids):
    df = pd.DataFrame(values, columns=classes)
    df.insert(0, "row_id", ids)
    return df


CLASSES = ["amerob", "barswa", "comrav", "eurwre", "houspa"]


# ----------------------------------------------------------------- simple blends


def test_mean_and_rank_mean():
    x = np.array([[[0.1, 10.0]], [[0.2, 30.0]], [[0.3, 20.0]]])  # 3 rows, 1 class, 2 models
    np.testing.assert_allclose(E.mean_blend(x)[:, 0], [5.05, 15.1, 10.15])
    # ranks model 0: 1, 2, 3; model 1: 1, 3, 2 -> mean / 3
    np.testing.assert_allclose(E.rank_mean_blend(x)[:, 0], [1 / 3, 2.5 / 3, 2.5 / 3])


def test_simplex_grid():
    grid = E.simplex_grid(3, 4)
    assert grid.shape == (15, 3)  # C(4 + 2, 2)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert len({tuple(g) for g in grid}) == 15


def test_fit_class_weights_finds_the_informative_model():
    y, x = synthetic_oof(0, n=400)
    x = np.concatenate([x[:, :, ::-1][:, :2], x[:, 2:]], axis=1)  # classes 0, 1: good model second
    y[:, 4] = 0  # no positives: weights stay uniform
    weights = E.fit_class_weights(y, x, steps=10)
    assert weights.shape == (5, 2)
    assert (weights[:2, 1] > 0.5).all() and (weights[2:4, 0] > 0.5).all()
    np.testing.assert_allclose(weights[4], [0.5, 0.5])
    blended = E.weighted_blend(x, weights)
    np.testing.assert_allclose(blended[:, 2], x[:, 2] @ weights[2])


def test_multilabel_folds_partition_rows():
    y, _ = synthetic_oof(1)
    folds = E.multilabel_folds(y, 4, seed=0)
    held_out = np.concatenate([val for _, val in folds])
    assert sorted(held_out) == list(range(len(y)))
    for train, val in folds:
        assert not set(train) & set(val)
        assert (y[val].sum(axis=0) > 0).all()  # stratified: every class in every fold
    with pytest.raises(DataError, match="cannot split 3 rows into 4 folds"):
        E.multilabel_folds(y[:3], 4, seed=0)


# ----------------------------------------------------------------- the stacker model


def test_stacker_starts_as_the_mean():
    y, x = synthetic_oof(2, n=50)
    model = E.Stacker(CLASSES, ["good", "noisy"])
    out = E._predict(model, x)
    np.testing.assert_allclose(out, (np.tanh(x.mean(axis=-1) - 1.6) + 1) / 2, atol=1e-6)
    assert macro_roc_auc(y, out) == pytest.approx(macro_roc_auc(y, x.mean(axis=-1)), abs=1e-12)


def test_save_load_and_apply(tmp_path):
    _, x = synthetic_oof(3, n=30)
    ids = [f"sc_{5 * (i + 1)}" for i in range(30)]
    model = E.Stacker(CLASSES, ["good", "noisy"], offset=1.2, scale=1.5)
    model.get_layer("label_mixing").set_weights(
        [np.eye(5, dtype=np.float32) + 0.1, np.full(5, 0.2, np.float32)]
    )  # not the initial state
    path = str(tmp_path / "stacker.keras")
    E.save_stacker(model, path)
    assert os.listdir(tmp_path) == ["stacker.keras"]  # no temporary left behind
    loaded = E.load_stacker(path)
    assert isinstance(loaded, E.Stacker)
    assert (loaded.class_names, loaded.model_names) == (CLASSES, ["good", "noisy"])
    assert (loaded.offset, loaded.scale) == (1.2, 1.5)
    good = table(x[..., 0], CLASSES, ids)
    noisy = table(x[..., 1], CLASSES, ids).sample(frac=1, random_state=0)[
        ["row_id", *CLASSES[::-1]]
    ]
    out = E.apply_stacker(loaded, [good, noisy])
    assert list(out.columns) == ["row_id", *CLASSES] and list(out["row_id"]) == ids
    np.testing.assert_allclose(out[CLASSES].to_numpy(), E._predict(model, x), atol=1e-6)


def test_apply_stacker_errors():
    model = E.Stacker(CLASSES, ["a", "b"])
    ids = ["s_5", "s_10"]
    a = table(np.full((2, 5), 0.5), CLASSES, ids)
    with pytest.raises(DataError, match="blends 2 models"):
        E.apply_stacker(model, [a])
    with pytest.raises(DataError, match="b: class column 'houspa' is missing"):
        E.apply_stacker(model, [a, a.drop(columns="houspa")])
    with pytest.raises(DataError, match="b: row_id 's_10' of a is missing"):
        E.apply_stacker(model, [a, a.iloc[:1]])
    with pytest.raises(DataError, match=r"a: row_id 's_15' of b is missing"):
        E.apply_stacker(model, [a, pd.concat([a, table(np.full((1, 5), 0.5), CLASSES, ["s_15"])])])
    with pytest.raises(DataError, match="b: row 's_5', column 'amerob'"):
        E.apply_stacker(model, [a, a.assign(amerob=[np.nan, 0.1])])
    with pytest.raises(DataError, match="not found"):
        E.load_stacker("/nonexistent/stacker.keras")


def test_load_stacker_rejects_other_models(tmp_path):
    import keras

    path = str(tmp_path / "other.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)
    with pytest.raises(DataError, match="other.keras: not a stacker"):
        E.load_stacker(path)


# ----------------------------------------------------------------- out of fold


FAST = E.StackerOptions(folds=3, learning_rate=0.03, max_epochs=150, patience=10)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stacker_never_below_the_mean_out_of_fold(seed):
    y, x = synthetic_oof(seed)
    report, oof, epochs = E.cross_validate(
        y, x, CLASSES, ["good", "noisy"], ["macro_roc_auc", "lwlrap"], FAST, log=lambda _: None
    )
    assert list(report) == ["good", "noisy", "mean", "rank_mean", "weighted_mean", "stacker"]
    for metric in ("macro_roc_auc", "lwlrap"):
        assert (
            report["good"][metric] > report["mean"][metric] > report["noisy"][metric]
        )  # the setting
        assert report["stacker"][metric] >= report["mean"][metric], (metric, report)
        assert report["weighted_mean"][metric] >= report["mean"][metric], (metric, report)
    assert report["stacker"]["lwlrap"] == pytest.approx(lwlrap(y, oof["stacker"]), abs=1e-12)
    assert 1 <= epochs <= FAST.max_epochs


@pytest.mark.slow
def test_cross_validate_scores_only_held_out_rows():
    """A fold's out-of-fold predictions are those of a stacker trained on the other folds only."""
    y, x = synthetic_oof(4, n=150)
    options = E.StackerOptions(folds=3, learning_rate=0.03, max_epochs=20, patience=5)
    folds = E.multilabel_folds(y, options.folds, options.seed)
    _, val = folds[0]
    model, _ = E.fit_stacker(y[folds[0][0]], x[folds[0][0]], CLASSES, ["good", "noisy"], options)
    _, oof, _ = E.cross_validate(
        y, x, CLASSES, ["good", "noisy"], ["lwlrap"], options, log=lambda _: None
    )
    np.testing.assert_allclose(oof["stacker"][val], E._predict(model, x[val]), atol=1e-6)
