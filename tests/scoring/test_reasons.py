"""The reasons a score carries (``scoring.reasons.reasons_for``), for hand-built
customers: the exact words, ordered by contribution, stable for the same
input, and protective reasons for a customer safer than the store's base rate.

No model and no database: a feature frame and a contributions array by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.reasons import MIN_CONTRIBUTION, reasons_for

BASE_RATE = 0.4
COLUMNS = [
    "tenure_days",
    "recency_days",
    "ipt_mean",
    "recency_ratio",
    "last_late_days",
    "survey_rating_last",
    "orders",
]
RECENCY = "no order for 84 days, twice their usual gap of 42 days"
LATE = "last delivery arrived 5 days late"
RATED = "rated the last order 2/5"


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLUMNS, index=pd.Index(range(len(rows))))


def slipping(**changes: float) -> dict:
    """A customer 84 days since their last order, who usually orders every 42
    days, whose last parcel was 5 days late and who rated it 2 of 5."""
    return {
        "tenure_days": 400.0,
        "recency_days": 84.0,
        "ipt_mean": 42.0,
        "recency_ratio": 2.0,
        "last_late_days": 5.0,
        "survey_rating_last": 2.0,
        "orders": 6.0,
        **changes,
    }


def contributions(**by_column: float) -> np.ndarray:
    return np.array([[by_column.get(c, 0.0) for c in COLUMNS]], dtype=np.float32)


def reasons(X: pd.DataFrame, contrib: np.ndarray, p: float) -> list[str]:
    return reasons_for(X, contrib, np.array([p]), BASE_RATE)[0]


def test_a_slipping_customer_gets_their_own_figures_in_plain_words():
    X = frame(slipping())
    contrib = contributions(recency_days=0.9, last_late_days=0.5, survey_rating_last=0.3)

    assert reasons(X, contrib, 0.8) == [RECENCY, LATE, RATED]


def test_reasons_follow_the_size_of_the_contribution():
    X = frame(slipping())
    contrib = contributions(recency_days=0.2, last_late_days=0.3, survey_rating_last=0.7)

    assert reasons(X, contrib, 0.8) == [RATED, LATE, RECENCY]


def test_only_the_top_three_risk_raising_features_are_said():
    X = frame(slipping())
    contrib = contributions(
        recency_days=0.9, last_late_days=0.5, survey_rating_last=0.3, orders=0.1, tenure_days=-2.0
    )

    assert reasons(X, contrib, 0.8) == [RECENCY, LATE, RATED]


def test_moves_too_small_to_matter_are_left_out():
    X = frame(slipping())
    contrib = contributions(recency_days=0.9, last_late_days=MIN_CONTRIBUTION / 2)

    assert reasons(X, contrib, 0.8) == [RECENCY]


def test_the_same_input_gives_the_same_reasons_and_ties_go_by_column_order():
    X = frame(slipping(), slipping())
    tie = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0],  # late before rating: column order
            [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0],
        ],
        dtype=np.float32,
    )
    p = np.array([0.8, 0.8])

    first = reasons_for(X, tie, p, BASE_RATE)
    again = reasons_for(X.copy(), tie.copy(), p.copy(), BASE_RATE)

    assert first == again == [[LATE, RATED], [LATE, RATED]]


def test_a_tie_follows_the_columns_not_the_values():
    columns = ["survey_rating_last", "last_late_days"]
    X = pd.DataFrame([{"survey_rating_last": 2.0, "last_late_days": 5.0}], columns=columns)

    assert reasons_for(X, np.array([[0.5, 0.5]]), np.array([0.8]), BASE_RATE) == [[RATED, LATE]]


def test_a_customer_safer_than_the_base_rate_gets_protective_reasons():
    X = frame(
        slipping(
            recency_days=5.0, recency_ratio=5 / 30, ipt_mean=30.0, last_late_days=0.0,
            survey_rating_last=5.0,
        )
    )  # fmt: skip
    # Negative contributions lower the risk; the risk-raising one is not said.
    contrib = contributions(
        recency_days=-0.8, survey_rating_last=-0.4, last_late_days=-0.1, orders=0.6
    )

    assert reasons(X, contrib, 0.1) == [
        "no order for 5 days, within their usual gap of 30 days",
        "rated the last order 5/5",
        "last delivery arrived on time",
    ]


def test_the_same_row_gets_the_other_side_when_its_risk_is_above_the_base():
    X = frame(slipping())
    contrib = contributions(recency_days=0.9, survey_rating_last=-0.4)

    assert reasons(X, contrib, BASE_RATE) == [RECENCY]  # at the base rate: risky side
    assert reasons(X, contrib, BASE_RATE - 0.01) == [RATED]


def test_a_missing_value_is_not_said_unless_its_absence_is_the_fact():
    never = slipping(recency_days=np.nan, ipt_mean=np.nan, recency_ratio=np.nan, tenure_days=30.0)
    X = frame(never | {"survey_rating_last": np.nan})
    contrib = contributions(survey_rating_last=2.0, recency_days=0.9, last_late_days=0.5)

    assert reasons(X, contrib, 0.8) == ["no order since signing up 30 days ago", LATE]


def test_the_second_recency_reason_does_not_use_up_a_place():
    """recency_days and recency_ratio say one thing: the second is skipped and
    the next feature takes its place."""
    X = frame(slipping())
    contrib = contributions(
        recency_days=0.9, recency_ratio=0.8, last_late_days=0.5, survey_rating_last=0.3
    )

    assert reasons(X, contrib, 0.8) == [RECENCY, LATE, RATED]
