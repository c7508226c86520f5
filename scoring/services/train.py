"""Training a tenant's churn model on a past as-of date whose horizon has passed.

``churn_train(tenant_id, label_end=…)`` computes features as of
``label_end - horizon`` from everything before it, labels them with the order
days in ``[label_end - horizon, label_end)``, fits the buy-till-you-die model on
the same history (its outputs are features), trains and calibrates the
candidates (see ``scoring.model``) and stores a :class:`ModelVersion`. Nothing
at or after ``label_end`` is read, so the version *fits* any as-of date from
``label_end`` on.

Small stores (fewer buyers than ``ScoringSettings.min_buyers_for_model`` before
the training as-of date, or under two horizons of history) get the
buy-till-you-die model alone, fitted on everything before ``label_end`` and
labelled as such: the product never refuses to score.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.db import transaction

from retention import clock
from retention.errors import InvalidInput
from scoring.btyd import BGNBDParams, bgnbd_fit
from scoring.data import history_load, history_span, labels_load
from scoring.features import Features, features_build
from scoring.model import TRAIN_MAX_ROWS, ChurnModel, btyd_model, model_fit
from scoring.models import ModelKind, ModelVersion
from scoring.services.setup import scoring_settings

logger = logging.getLogger(__name__)

SNAPSHOTS = 2
SNAPSHOT_STEP = 30  # days


@dataclass
class Trained:
    model: ChurnModel
    features: Features  # as of train_as_of
    labels: np.ndarray  # order days in the horizon, aligned with X
    X: pd.DataFrame  # the training rows: every snapshot's customers
    train_as_of: datetime
    label_end: datetime
    history_start: datetime | None
    buyers: int
    seconds: dict[str, float]
    note: str


def btyd_fit_history(features: Features) -> BGNBDParams:
    """Fit BG/NBD on the buyers' (x, t_x, T) in whole days (grouped, so a
    million buyers fit in about a second)."""
    s = features.btyd_input
    if s.empty:
        return bgnbd_fit(np.zeros(0), np.zeros(0), np.zeros(0))
    return bgnbd_fit(s["x"].to_numpy(), s["t_x"].to_numpy(), np.round(s["T"].to_numpy()))


def churn_fit(
    tenant_id: int, *, label_end: datetime, horizon_days: int, min_buyers: int
) -> Trained:
    """Load, featurise and fit; store nothing (``churn_train`` and the backtest
    both use this)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    train_as_of = label_end - timedelta(days=horizon_days)
    history_start, buyers = history_span(tenant_id, train_as_of)
    enough_history = history_start is not None and (label_end - history_start) >= timedelta(
        days=2 * horizon_days
    )
    small = buyers < min_buyers or not enough_history
    if small:
        # The BTYD model needs no labels: fit it on everything before label_end.
        history = history_load(tenant_id, label_end)
        bare = features_build(history, None, horizon_days)
        params = btyd_fit_history(bare)
        features = features_build(history, params, horizon_days)
        seconds["load_features"] = time.perf_counter() - started
        why = (
            f"{buyers} buyers before {train_as_of:%Y-%m-%d} (a model needs {min_buyers})"
            if buyers < min_buyers
            else "under two horizons of order history"
        )
        model = btyd_model(features.frame, params, horizon_days, note=why)
        labels = np.zeros(len(features.frame))
        X = features.frame
        seconds["train"] = time.perf_counter() - started - seconds["load_features"]
        history_start, buyers = history_span(tenant_id, label_end)
        return Trained(
            model, features, labels, X, label_end, label_end, history_start, buyers, seconds,
            f"Buy-till-you-die model alone: {why}.",
        )  # fmt: skip
    history = history_load(tenant_id, train_as_of)
    order_days = labels_load(tenant_id, train_as_of, horizon_days)
    bare = features_build(history, None, horizon_days)
    params = btyd_fit_history(bare)
    features = features_build(history, params, horizon_days)
    columns = features.columns()
    X = features.frame[columns]
    y = order_days.reindex(X.index, fill_value=0).to_numpy()
    # Earlier snapshots: the customers as of SNAPSHOT_STEP days before, each
    # with its own full horizon of labels. They show the model customers at
    # more ages (the base ages between training and scoring) and give small
    # stores more rows; a store that already fills TRAIN_MAX_ROWS needs none.
    frames, labels = [X], [y]
    for k in range(1, SNAPSHOTS):
        at = train_as_of - timedelta(days=k * SNAPSHOT_STEP)
        if sum(len(f) for f in frames) >= TRAIN_MAX_ROWS:
            break
        if history_start is None or at - history_start < timedelta(days=horizon_days / 2):
            break
        h = history_load(tenant_id, at)
        f = features_build(h, params, horizon_days).frame.reindex(columns=columns)
        frames.append(f)
        labels.append(
            labels_load(tenant_id, at, horizon_days).reindex(f.index, fill_value=0).to_numpy()
        )
    X = pd.concat(frames)
    y = np.concatenate(labels)
    seconds["load_features"] = time.perf_counter() - started
    fit_started = time.perf_counter()
    model = model_fit(X, y, params, horizon_days)
    seconds["train"] = time.perf_counter() - fit_started
    absent = sorted({"families", "returns", "deliveries", "surveys", "support", "product",
                     "messages"} - features.present)  # fmt: skip
    note = f"Chosen by holdout log loss: {model.kind}."
    if absent:
        note += " No data for: " + ", ".join(absent) + " (those features are left out)."
    return Trained(
        model, features, y, X, train_as_of, label_end, history_start, buyers, seconds, note
    )


def version_save(
    tenant_id: int, trained: Trained, *, activate: bool, metrics: dict | None = None
) -> ModelVersion:
    model = trained.model
    with transaction.atomic():
        # Lock the tenant's versions (in id order, as version_activate does) so a
        # rollback at the same moment cannot leave two active.
        locked = list(
            ModelVersion.objects.for_tenant(tenant_id)
            .select_for_update()
            .order_by("pk")
            .values_list("version", flat=True)
        )
        top = max(locked, default=0)
        version = ModelVersion(
            tenant_id=tenant_id,
            version=top + 1,
            kind=model.kind,
            trained_at=clock.now(),
            train_as_of=trained.train_as_of,
            label_end=trained.label_end,
            history_start=trained.history_start,
            horizon_days=model.horizon_days,
            n_train=len(trained.X),
            n_buyers=trained.buyers,
            base_rate=model.base_rate,
            features=model.columns,
            importances=model.importances,
            metrics={
                "selection": model.selection,
                "seconds": {k: round(v, 2) for k, v in trained.seconds.items()},
                **(metrics or {}),
            },
            btyd_params=model.btyd.as_dict(),
            notes=trained.note,
            artifact=pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL),
        )
        if activate:
            ModelVersion.objects.for_tenant(tenant_id).filter(is_active=True).update(
                is_active=False
            )
            version.is_active = True
        version.save()
    logger.info(
        "scoring.trained tenant_id=%s version=%s kind=%s n=%s",
        tenant_id, version.version, version.kind, version.n_train,
    )  # fmt: skip
    return version


def churn_train(
    tenant_id: int,
    *,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    activate: bool = True,
) -> ModelVersion:
    """Train on everything before ``as_of`` (default now) and store the version,
    active unless told otherwise."""
    settings = scoring_settings(tenant_id)
    horizon = horizon_days or settings.horizon_days
    if horizon < 1:
        raise InvalidInput("The horizon must be at least one day.", fields={"horizon_days": "≥ 1"})
    label_end = as_of or clock.now()
    trained = churn_fit(
        tenant_id,
        label_end=label_end,
        horizon_days=horizon,
        min_buyers=settings.min_buyers_for_model,
    )
    version = version_save(tenant_id, trained, activate=activate)
    settings.last_trained_at = clock.now()
    settings.save(update_fields=["last_trained_at"])
    return version


def model_load(version: ModelVersion) -> ChurnModel:
    return _cached(version.pk, version.trained_at, lambda: pickle.loads(bytes(version.artifact)))  # noqa: S301 (our own artifact)


_CACHE: dict[int, tuple[datetime, ChurnModel]] = {}


def _cached(key: int, stamp: datetime, load) -> ChurnModel:
    hit = _CACHE.get(key)
    if hit is None or hit[0] != stamp:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = (stamp, load())
    return _CACHE[key][1]


def version_for(tenant_id: int, as_of: datetime) -> ModelVersion | None:
    """The version to score ``as_of`` with: the active one if it uses nothing
    after ``as_of``, else the newest that does."""
    versions = ModelVersion.objects.for_tenant(tenant_id).filter(label_end__lte=as_of)
    return (
        versions.filter(is_active=True).first()
        or versions.order_by("-label_end", "-version").first()
    )


__all__ = ["ModelKind", "churn_fit", "churn_train", "model_load", "version_for", "version_save"]
