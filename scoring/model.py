"""The churn model: candidates, calibration, choice, prediction and contributions.

``model_fit(features, order_days, btyd, horizon_days)`` trains on one as-of
date whose horizon has passed (labels are real):

- ``p_churn`` (no order day in the horizon) from two calibrated candidates,
  histogram gradient boosting and logistic regression (imputed, log-scaled,
  one-hot families), each wrapped in ``CalibratedClassifierCV`` (isotonic with
  enough data, sigmoid below). Both are fitted on 80% of the customers (a
  deterministic hash of the id) and the one with the lower log loss on the
  other 20% is kept; both figures are recorded.
- ``expected_orders`` from a Poisson gradient-boosting regressor on the order
  days in the horizon (a Poisson loss keeps the predicted total equal to the
  actual total on the training data).
- Stores with too few buyers get :class:`BtydModel`: the BG/NBD model alone.

Per-feature *contributions* (for the reasons a score carries) come from each
feature's partial dependence, computed once at training on a sample: the mean
log-odds of churn (of the underlying model, before calibration)
when every sampled customer is given value v of the feature.
A customer's contribution of feature j is that curve at their value, minus the
curve's average over the sample; positive raises their risk. For the logistic
candidate this is exactly its additive term; for boosting it is the additive
part of the model, which is what a plain-words reason can say. Feature
importances are the mean absolute contribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from scoring.btyd import BGNBDParams, bgnbd_expected, bgnbd_p_none
from scoring.features import CATEGORICAL

EPS = 1e-4
HOLDOUT_PCT = 20
PD_SAMPLE = 600
PD_GRID = 12
ISOTONIC_FROM = 5000  # training rows
# Training reads at most this many customers (a random sample beyond it): the
# holdout figures stop improving long before, and the fit stays within minutes
# on a 2-core machine at a million customers.
TRAIN_MAX_ROWS = 200_000
# One native thread per process: a worker shares the machine with the other
# worker and PostgreSQL, and OpenMP threads that compete for two cores run
# several times slower than one (13.8 s against 3.8 s for the same fit).
THREADS = 1


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def holdout_mask(customer_ids: np.ndarray) -> np.ndarray:
    """A stable 20% of customers (Knuth's multiplicative hash of the id)."""
    return (customer_ids.astype(np.uint64) * np.uint64(2654435761) % np.uint64(100)) < HOLDOUT_PCT


def _signed_log(x):
    return np.sign(x) * np.log1p(np.abs(x))


def _gbm(columns: list[str]) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=[c in CATEGORICAL for c in columns] or None,
        early_stopping=True,  # on a tenth of each fit's rows: sized to the data
        random_state=0,
    )


def _logit_pipeline(columns: list[str]) -> Pipeline:
    numeric = [c for c in columns if c not in CATEGORICAL]
    categorical = [c for c in columns if c in CATEGORICAL]
    numeric_steps = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        FunctionTransformer(_signed_log),
        StandardScaler(),
    )
    transformers = [("num", numeric_steps, numeric)]
    if categorical:
        transformers.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                ),
                categorical,
            )
        )
    return Pipeline(
        [
            ("prep", ColumnTransformer(transformers)),
            ("lr", LogisticRegression(C=0.5, max_iter=1000)),
        ]
    )


def _calibrated(estimator, n: int) -> CalibratedClassifierCV:
    """Calibrated on out-of-fold predictions of three folds, then one model
    refitted on all rows (``ensemble=False``): a third of the prediction cost
    of keeping the three fold models, which matters at a million customers."""
    method = "isotonic" if n >= ISOTONIC_FROM else "sigmoid"
    return CalibratedClassifierCV(estimator, method=method, cv=3, ensemble=False)


@dataclass
class Curves:
    """Partial dependence of the churn log-odds on each feature, for reasons."""

    grids: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, float] = field(default_factory=dict)  # the curve at NaN
    centre: dict[str, float] = field(default_factory=dict)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(n, features) in log-odds, columns in ``X``'s order (0 where no curve)."""
        out = np.zeros((len(X), X.shape[1]), dtype=np.float32)
        for j, col in enumerate(X.columns):
            if col not in self.grids:
                continue
            x = X[col].to_numpy(dtype="float64")
            grid, values = self.grids[col], self.values[col]
            if col in CATEGORICAL:
                pos = np.searchsorted(grid, x)
                pos = np.clip(pos, 0, len(grid) - 1)
                hit = grid[pos] == x
                y = np.where(hit, values[pos], self.centre[col])
            else:
                y = np.interp(x, grid, values)
            y = np.where(np.isnan(x), self.missing.get(col, self.centre[col]), y)
            out[:, j] = y - self.centre[col]
        return out


def curves_fit(predict_logit, X: pd.DataFrame, seed: int = 0) -> Curves:
    """Partial dependence on a sample of ``X`` for every column."""
    rng = np.random.default_rng(seed)
    sample = X.iloc[rng.choice(len(X), min(PD_SAMPLE, len(X)), replace=False)].copy()
    curves = Curves()
    for col in X.columns:
        x = sample[col].to_numpy(dtype="float64")
        seen = x[~np.isnan(x)]
        if seen.size == 0:
            continue
        if col in CATEGORICAL:
            grid = np.unique(seen)[:64]
        else:
            grid = np.unique(np.quantile(seen, np.linspace(0, 1, PD_GRID)))
        points = list(grid) + ([np.nan] if np.isnan(x).any() else [])
        probe = pd.concat([sample] * len(points), ignore_index=True)
        probe[col] = np.repeat(np.array(points, dtype="float64"), len(sample))
        logits = predict_logit(probe).reshape(len(points), len(sample)).mean(axis=1)
        if not np.all(np.isfinite(logits)):
            continue  # a curve the model cannot draw gives no reasons, not NaN ones
        curves.grids[col] = grid
        curves.values[col] = logits[: len(grid)]
        if len(points) > len(grid):
            curves.missing[col] = float(logits[-1])
        # Centre: the curve averaged over the sample's own values.
        own = sample[[col]]
        own_contrib = _curve_at(curves, col, own[col].to_numpy(dtype="float64"))
        curves.centre[col] = float(np.mean(own_contrib))
    return curves


def _curve_at(curves: Curves, col: str, x: np.ndarray) -> np.ndarray:
    grid, values = curves.grids[col], curves.values[col]
    if col in CATEGORICAL:
        pos = np.clip(np.searchsorted(grid, x), 0, len(grid) - 1)
        y = np.where(grid[pos] == x, values[pos], np.mean(values))
    else:
        y = np.interp(x, grid, values)
    return np.where(np.isnan(x), curves.missing.get(col, float(np.mean(values))), y)


class BtydModel:
    """The BG/NBD model as a churn model over three feature columns."""

    columns = ("order_days", "recency_days", "first_order_days", "tenure_days")

    def __init__(self, params: BGNBDParams, horizon_days: int) -> None:
        self.params = params
        self.horizon_days = horizon_days

    def _inputs(self, X: pd.DataFrame):
        days = X["order_days"].to_numpy(dtype="float64")
        buyer = days > 0
        first = np.floor(X["first_order_days"].fillna(0.0).to_numpy(dtype="float64"))
        last = np.floor(X["recency_days"].fillna(0.0).to_numpy(dtype="float64"))
        tenure = X["tenure_days"].fillna(0.0).to_numpy(dtype="float64")
        # Partial-dependence probes can set recency past the first order.
        last = np.minimum(last, first)
        x = np.where(buyer, days - 1, 0.0)
        t_x = np.where(buyer, first - last, 0.0)
        T = np.where(buyer, first + 0.5, np.maximum(tenure, 0.5))
        return x, t_x, T

    def p_churn(self, X: pd.DataFrame) -> np.ndarray:
        return bgnbd_p_none(self.params, *self._inputs(X), float(self.horizon_days))

    def expected(self, X: pd.DataFrame) -> np.ndarray:
        return bgnbd_expected(self.params, *self._inputs(X), float(self.horizon_days))


@dataclass
class ChurnModel:
    """What a model version stores (pickled) and scoring uses."""

    kind: str  # ModelKind value
    columns: list[str]
    horizon_days: int
    btyd: BGNBDParams
    classifier: object | None = None  # calibrated candidate (gbm / logit)
    regressor: object | None = None  # Poisson GBM for expected orders
    curves: Curves = field(default_factory=Curves)
    importances: dict[str, float] = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    base_rate: float | None = None

    def _X(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.reindex(columns=self.columns)

    def p_churn(self, X: pd.DataFrame) -> np.ndarray:
        X = self._X(X)
        if self.classifier is None:
            return BtydModel(self.btyd, self.horizon_days).p_churn(X)
        with threadpool_limits(limits=THREADS):
            return self.classifier.predict_proba(X)[:, 1]

    def expected_orders(self, X: pd.DataFrame) -> np.ndarray:
        X = self._X(X)
        if self.regressor is None:
            return BtydModel(self.btyd, self.horizon_days).expected(X)
        with threadpool_limits(limits=THREADS):
            return np.maximum(self.regressor.predict(X), 0.0)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        return self.curves.contributions(self._X(X))


def _score(y: np.ndarray, p: np.ndarray) -> dict:
    both = len(np.unique(y)) == 2
    return {
        "log_loss": float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
    }


def model_fit(
    X: pd.DataFrame,
    order_days: np.ndarray,
    btyd: BGNBDParams,
    horizon_days: int,
    *,
    kinds: tuple[str, ...] = ("gbm", "logit"),
) -> ChurnModel:
    """Train the candidates on ``X`` (one row per customer, the columns the
    tenant has data for) with labels ``order_days`` in the horizon; keep the
    better one. Falls back to the BTYD model if the labels have one class."""
    with threadpool_limits(limits=THREADS):
        return _model_fit(X, order_days, btyd, horizon_days, kinds)


def _model_fit(X, order_days, btyd, horizon_days, kinds) -> ChurnModel:
    columns = list(X.columns)
    if len(X) > TRAIN_MAX_ROWS:
        keep = np.sort(np.random.default_rng(0).choice(len(X), TRAIN_MAX_ROWS, replace=False))
        X, order_days = X.iloc[keep], np.asarray(order_days)[keep]
    y = (np.asarray(order_days) == 0).astype(np.int8)
    if len(np.unique(y)) < 2 or len(X) < 50:
        return btyd_model(X, btyd, horizon_days, note="one outcome only")
    held = holdout_mask(X.index.to_numpy())
    if held.all() or not held.any() or len(np.unique(y[~held])) < 2:
        held = np.zeros(len(X), bool)
    fit_X, fit_y = X[~held], y[~held]
    candidates = {}
    selection = {}
    for kind in kinds:
        base = _gbm(columns) if kind == "gbm" else _logit_pipeline(columns)
        model = _calibrated(base, len(fit_X)).fit(fit_X, fit_y)
        candidates[kind] = model
        if held.any():
            selection[kind] = _score(y[held], model.predict_proba(X[held])[:, 1])
    chosen = min(selection, key=lambda k: (selection[k]["log_loss"], k)) if selection else kinds[0]
    selection["chosen"] = chosen
    classifier = candidates[chosen]
    # Early stopping on a tenth of the rows sizes the regressor to the data: a
    # fixed 120 rounds overfit a 2,000-customer store and under-predicted its
    # next-quarter orders by 5-9% in backtests (-0.1 to +2.5% with it).
    regressor = HistGradientBoostingRegressor(
        loss="poisson",
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        categorical_features=[c in CATEGORICAL for c in columns] or None,
        early_stopping=True,
        random_state=0,
    ).fit(X, np.asarray(order_days, dtype="float64"))
    # Curves from the underlying model, in its log-odds: calibration is
    # monotone, so it changes no ranking of reasons.
    base = classifier.calibrated_classifiers_[0].estimator
    curves = curves_fit(base.decision_function, X)
    model = ChurnModel(
        kind=chosen,
        columns=columns,
        horizon_days=horizon_days,
        btyd=btyd,
        classifier=classifier,
        regressor=regressor,
        curves=curves,
        selection=selection,
        base_rate=float(y.mean()),
    )
    model.importances = _importances(model, X)
    return model


def btyd_model(X: pd.DataFrame, btyd: BGNBDParams, horizon_days: int, note: str = "") -> ChurnModel:
    columns = list(BtydModel.columns)
    bt = BtydModel(btyd, horizon_days)
    Xb = X.reindex(columns=columns)
    curves = curves_fit(lambda Z: _logit(bt.p_churn(Z)), Xb) if len(Xb) else Curves()
    model = ChurnModel(
        kind="btyd",
        columns=columns,
        horizon_days=horizon_days,
        btyd=btyd,
        curves=curves,
        selection={"chosen": "btyd", "why": note} if note else {"chosen": "btyd"},
    )
    model.importances = _importances(model, Xb) if len(Xb) else {}
    return model


def _importances(model: ChurnModel, X: pd.DataFrame) -> dict[str, float]:
    sample = X.iloc[: min(len(X), 20_000)]
    contrib = np.nan_to_num(np.abs(model.contributions(sample)).mean(axis=0))
    ranked = sorted(zip(model.columns, contrib, strict=True), key=lambda kv: -kv[1])
    return {name: round(float(v), 4) for name, v in ranked}
