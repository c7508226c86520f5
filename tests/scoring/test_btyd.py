"""The BG/NBD model: the fit recovers what simulated data were drawn from, the
closed-form predictions match forward simulation, and nothing breaks on tiny,
degenerate or extreme input. Pure numpy; no database."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from scoring import btyd
from scoring.btyd import (
    DEFAULT_PARAMS,
    BGNBDParams,
    bgnbd_expected,
    bgnbd_fit,
    bgnbd_p_alive,
    bgnbd_p_none,
    bgnbd_simulate,
    summarise,
)

CDNOW_DAYS = BGNBDParams(r=0.25, alpha=4.0, a=0.8, b=2.4)
FREQUENT = BGNBDParams(r=1.5, alpha=40.0, a=0.4, b=4.0)
# Busy enough that a 180-day history often holds several repeat purchases.
ACTIVE = BGNBDParams(r=0.8, alpha=20.0, a=0.8, b=2.4)


def simulated(params: BGNBDParams, n: int, seed: int):
    rng = np.random.default_rng(seed)
    return bgnbd_simulate(params, rng.uniform(30, 365, n), rng)


def simulate_forward(params: BGNBDParams, *, T: float, t: float, n: int, seed: int):
    """The generative story written out again, independently of ``bgnbd_simulate``:
    (x, t_x) over (0, T] and the number of purchases in (T, T+t]."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x, t_x, future, now = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    live = np.flatnonzero(lam > 0)
    while len(live):
        now[live] += rng.exponential(1.0 / lam[live])
        live = live[now[live] <= T + t]
        past = live[now[live] <= T]
        x[past] += 1
        t_x[past] = now[past]
        ahead = live[now[live] > T]
        future[ahead] += 1
        live = live[rng.random(len(live)) >= p[live]]
    return x, t_x, future


# --- fitting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("truth", [CDNOW_DAYS, FREQUENT], ids=["cdnow", "frequent"])
def test_fit_recovers_the_parameters_the_data_were_drawn_from(truth):
    # Given 30,000 customers drawn from known parameters
    x, t_x, T = simulated(truth, 30_000, seed=7)

    # When the model is fitted
    fitted = bgnbd_fit(x, t_x, T)

    # Then it converged on all of them, and recovers them. Over 20 seeds at this size
    # the relative error's sd was about 1% for r, alpha and r/alpha, 2% for a/(a+b)
    # and 3-5% for a and b (which trade off along a ridge): tolerances are 4-5 sd.
    assert fitted.converged
    assert fitted.n == 30_000
    assert fitted.r == pytest.approx(truth.r, rel=0.08)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.08)
    assert fitted.a == pytest.approx(truth.a, rel=0.25)
    assert fitted.b == pytest.approx(truth.b, rel=0.25)
    assert fitted.r / fitted.alpha == pytest.approx(truth.r / truth.alpha, rel=0.05)
    dropout = truth.a / (truth.a + truth.b)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(dropout, rel=0.10)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    r=st.floats(0.3, 2.0),
    alpha=st.floats(5.0, 50.0),
    a=st.floats(0.5, 2.0),
    b=st.floats(2.0, 8.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_recovers_purchase_rate_and_forecast_across_parameters(r, alpha, a, b, seed):
    # Given 5,000 customers from parameters anywhere in a plausible box
    truth = BGNBDParams(r=r, alpha=alpha, a=a, b=b)
    x, t_x, T = simulated(truth, 5_000, seed=seed)

    # When fitted
    fitted = bgnbd_fit(x, t_x, T)

    # Then the rate while active and the store's 90-day forecast match the truth.
    # Over 300 draws at this size their sd was 2% and 1.4%: tolerances are 6 sd.
    assert fitted.converged
    assert fitted.r / fitted.alpha == pytest.approx(r / alpha, rel=0.12)
    forecast = bgnbd_expected(fitted, x, t_x, T, 90).sum()
    assert forecast == pytest.approx(bgnbd_expected(truth, x, t_x, T, 90).sum(), rel=0.08)


def test_weights_count_as_repeated_customers():
    # Given the same customers once with a weight each, and once repeated that often
    x = np.array([0.0, 0.0, 1.0, 3.0, 7.0, 2.0])
    t_x = np.array([0.0, 0.0, 30.0, 90.0, 200.0, 12.0])
    T = np.array([40.0, 300.0, 100.0, 150.0, 220.0, 300.0])
    counts = np.array([50, 20, 10, 8, 3, 9])

    # When both are fitted
    weighted = bgnbd_fit(x, t_x, T, weights=counts)
    repeated = bgnbd_fit(np.repeat(x, counts), np.repeat(t_x, counts), np.repeat(T, counts))

    # Then they are the same fit
    assert weighted.n == repeated.n == 100
    for name in ("r", "alpha", "a", "b"):
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name), rel=1e-6)


def test_no_customers_gives_the_prior_flagged_unconverged():
    fitted = bgnbd_fit(np.array([]), np.array([]), np.array([]))

    assert fitted == DEFAULT_PARAMS
    assert fitted.converged is False
    assert fitted.n == 0


def test_five_customers_give_finite_sane_parameters():
    # Given a store with five customers, two of whom came back
    x = np.array([0.0, 2.0, 0.0, 1.0, 0.0])
    t_x = np.array([0.0, 40.0, 0.0, 10.0, 0.0])
    T = np.array([60.0, 90.0, 15.0, 120.0, 200.0])

    # When fitted
    fitted = bgnbd_fit(x, t_x, T)

    # Then the optimiser finished, the prior kept every parameter finite and off the
    # box, and the predictions are usable
    assert fitted.converged is True
    assert fitted.n == 5
    values = np.array([fitted.r, fitted.alpha, fitted.a, fitted.b])
    assert np.all(np.isfinite(values))
    assert np.all(np.log(values) > btyd.LOWER) and np.all(np.log(values) < btyd.UPPER)
    forecast = bgnbd_expected(fitted, x, t_x, T, 90)
    assert np.all(np.isfinite(forecast)) and np.all(forecast >= 0)


def test_no_repeat_buyers_leaves_dropout_at_the_prior_and_flags_it():
    # Given 50 customers none of whom has bought a second time
    T = np.linspace(10, 400, 50)
    zeros = np.zeros(50)

    # When fitted
    fitted = bgnbd_fit(zeros, zeros, T)

    # Then dropout is unidentified, so a and b are exactly the prior's centre; the
    # purchase rate is pulled down by the quiet customers but stays finite
    assert fitted.converged is False
    assert fitted.n == 50
    assert fitted.a == pytest.approx(DEFAULT_PARAMS.a, rel=1e-4)
    assert fitted.b == pytest.approx(DEFAULT_PARAMS.b, rel=1e-4)
    assert 0 < fitted.r / fitted.alpha < DEFAULT_PARAMS.r / DEFAULT_PARAMS.alpha


def test_unusable_rows_are_left_out():
    # Given three good customers and four broken rows
    x = np.array([0.0, 2.0, 1.0, np.nan, -1.0, 1.0, 3.0])
    t_x = np.array([0.0, 40.0, 10.0, 5.0, 0.0, 80.0, np.inf])
    T = np.array([60.0, 90.0, 120.0, 50.0, 50.0, 30.0, 100.0])

    fitted = bgnbd_fit(x, t_x, T)

    # Then only the good ones count (t_x > T is broken too)
    assert fitted.n == 3
    assert fitted == bgnbd_fit(x[:3], t_x[:3], T[:3])


def test_a_non_finite_optimum_falls_back_to_the_prior(monkeypatch):
    # Given an optimiser that comes back with nonsense
    def broken(*args, **kwargs):
        return optimize.OptimizeResult(x=np.full(4, np.nan), fun=np.nan, success=True)

    monkeypatch.setattr(btyd.optimize, "minimize", broken)

    # When fitted
    fitted = bgnbd_fit(np.array([1.0, 0.0]), np.array([5.0, 0.0]), np.array([10.0, 10.0]))

    # Then the prior is returned, flagged
    assert fitted == BGNBDParams(**{**DEFAULT_PARAMS.as_dict(), "n": 2})
    assert fitted.converged is False


def test_the_objective_gradient_matches_finite_differences():
    x, t_x, T = simulated(CDNOW_DAYS, 2_000, seed=3)
    objective = btyd._Objective(*btyd._compress(x, t_x, T, np.ones_like(x)))

    for theta in (objective.centre, np.log([1.3, 7.0, 0.4, 12.0])):
        analytic = objective(theta)[1]
        numeric = optimize.approx_fprime(theta, lambda th: objective(th)[0], 1e-7)
        assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_parameters_survive_a_json_round_trip():
    params = BGNBDParams(r=0.31, alpha=12.5, a=0.9, b=3.2, converged=False, n=1234)

    stored = json.loads(json.dumps(params.as_dict()))

    assert stored == {
        "r": 0.31,
        "alpha": 12.5,
        "a": 0.9,
        "b": 3.2,
        "converged": False,
        "n": 1234,
    }
    assert BGNBDParams.from_dict(stored) == params


# --- predictions ------------------------------------------------------------------------------


def test_p_alive_is_one_without_a_repeat_purchase():
    T = np.array([0.0, 10.0, 365.0, 3000.0])

    assert np.array_equal(bgnbd_p_alive(CDNOW_DAYS, np.zeros(4), np.zeros(4), T), np.ones(4))


def test_p_alive_is_the_papers_formula():
    x, t_x, T = (
        np.array([1.0, 4.0, 10.0]),
        np.array([20.0, 100.0, 150.0]),
        np.array([90.0, 200.0, 160.0]),
    )
    r, alpha, a, b = 0.25, 4.0, 0.8, 2.4

    direct = 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))

    assert bgnbd_p_alive(CDNOW_DAYS, x, t_x, T) == pytest.approx(direct, rel=1e-12)


def test_p_alive_falls_as_the_silence_grows():
    T = np.arange(50.0, 2000.0, 50.0)

    p_alive = bgnbd_p_alive(CDNOW_DAYS, 3.0, 40.0, T)

    assert np.all(np.diff(p_alive) < 0)
    assert 0 < p_alive[-1] < p_alive[0] < 1


def test_expected_purchases_rise_with_frequency_at_the_same_recency():
    x = np.arange(1.0, 30.0)

    expected = bgnbd_expected(CDNOW_DAYS, x, 190.0, 200.0, 90.0)

    assert np.all(np.diff(expected) > 0)


def test_predictions_match_forward_simulation_for_fixed_histories():
    # Given 300,000 simulated customers seen for 180 days and then 60 more
    T, t = 180.0, 60.0
    x, t_x, future = simulate_forward(ACTIVE, T=T, t=t, n=300_000, seed=11)
    histories = {
        "new and quiet": x == 0,
        "three purchases, recent": (x == 3) & (t_x >= T - 20),
        "three purchases, long ago": (x == 3) & (t_x <= 40),
        "regular": (x >= 8) & (x <= 10) & (t_x >= T - 30),
    }

    for name, group in histories.items():
        # When the closed forms are evaluated on the customers with that history
        size = int(group.sum())
        p_none = bgnbd_p_none(ACTIVE, x[group], t_x[group], T, t)
        expected = bgnbd_expected(ACTIVE, x[group], t_x[group], T, t)

        # Then each conditional expectation averages to what the simulation did,
        # within 4 Monte Carlo standard errors
        quiet = future[group] == 0
        assert size > 400, name
        assert quiet.mean() == pytest.approx(p_none.mean(), abs=4 * quiet.std() / size**0.5), name
        bought = future[group]
        assert bought.mean() == pytest.approx(expected.mean(), abs=4 * bought.std() / size**0.5), (
            name
        )


def test_simulation_matches_the_expected_purchases_of_a_new_customer():
    # A customer at their first purchase has history (0, 0, 0); their expected
    # purchases over the next T days are E[X(T)] (eq. 9 of the paper)
    rng = np.random.default_rng(5)
    x, _, _ = bgnbd_simulate(CDNOW_DAYS, np.full(200_000, 365.0), rng)

    expected = float(bgnbd_expected(CDNOW_DAYS, 0.0, 0.0, 0.0, 365.0))

    assert x.mean() == pytest.approx(expected, abs=4 * x.std() / len(x) ** 0.5)


def test_simulated_histories_are_consistent():
    rng = np.random.default_rng(9)
    T = rng.uniform(0, 500, 10_000)

    x, t_x, T_out = bgnbd_simulate(FREQUENT, T, rng)

    assert np.array_equal(T_out, T)
    assert np.all((x >= 0) & (x == np.round(x)))
    assert np.all((t_x >= 0) & (t_x <= T))
    assert np.all(t_x[x == 0] == 0)
    assert np.all(t_x[x > 0] > 0)


@pytest.mark.parametrize("a", [0.3, 0.999, 1.0, 1.001, 4.0])
def test_closed_form_and_quadrature_agree(a):
    # Including a = 1, where the closed form is 0/0 and the quadrature takes over
    params = BGNBDParams(r=0.7, alpha=15.0, a=a, b=3.0)
    x, T, t = np.meshgrid(
        [0.0, 1.0, 5.0, 40.0], [0.0, 30.0, 400.0, 3000.0], [0.01, 7.0, 90.0, 2000.0]
    )
    x, T, t = x.ravel(), T.ravel(), t.ravel()

    closed = bgnbd_expected(params, x, T, T, t) / bgnbd_p_alive(params, x, T, T)
    quadrature = btyd._expected_if_alive_quadrature(params, x, T, t)

    assert closed == pytest.approx(quadrature, rel=1e-7)


def test_expected_is_continuous_through_a_equal_one():
    at = {
        a: bgnbd_expected(BGNBDParams(0.5, 20.0, a, 2.0), 4.0, 100.0, 150.0, 60.0)
        for a in (0.9999, 1.0, 1.0001)
    }

    assert at[0.9999] > at[1.0] > at[1.0001]
    assert at[1.0] == pytest.approx((at[0.9999] + at[1.0001]) / 2, rel=1e-6)


def test_p_none_and_expected_are_zero_horizon_safe():
    p_none = bgnbd_p_none(CDNOW_DAYS, 3.0, 40.0, 100.0, 0.0)
    expected = bgnbd_expected(CDNOW_DAYS, 3.0, 40.0, 100.0, 0.0)

    assert float(p_none) == 1.0
    assert float(expected) == 0.0


def test_scalars_in_give_scalars_out():
    assert np.shape(bgnbd_expected(CDNOW_DAYS, 2, 10, 50, 30)) == ()
    assert np.shape(bgnbd_p_none(CDNOW_DAYS, 2, 10, 50, 30)) == ()
    assert np.shape(bgnbd_p_alive(CDNOW_DAYS, 2, 10, 50)) == ()


@pytest.mark.parametrize(
    "params",
    [
        DEFAULT_PARAMS,
        BGNBDParams(r=1e-4, alpha=1e-3, a=1e-4, b=1e4),
        BGNBDParams(r=1e3, alpha=1e6, a=1e3, b=1e-4),
        BGNBDParams(r=50.0, alpha=1.0, a=5.0, b=0.5),
        BGNBDParams(r=2.0, alpha=30.0, a=1.2, b=1e4),
    ],
    ids=["default", "low-corner", "high-corner", "busy", "sticky"],
)
def test_extreme_histories_give_finite_bounded_predictions(params):
    # Given long, busy histories and long horizons (x = 50, T = 3000 and worse)
    x, T, t = np.meshgrid([0.0, 1.0, 50.0, 300.0, 3000.0], [0.0, 1.0, 3000.0], [1e-6, 365.0, 1e5])
    x, T, t = x.ravel(), T.ravel(), t.ravel()
    t_x = np.where(x > 0, T / 2, 0.0)

    # When predicted
    p_alive = bgnbd_p_alive(params, x, t_x, T)
    p_none = bgnbd_p_none(params, x, t_x, T, t)
    expected = bgnbd_expected(params, x, t_x, T, t)

    # Then every number is finite and within its bounds: a live customer buys at most
    # the posterior mean rate (r+x)/(alpha+T) times t
    assert np.all((p_alive >= 0) & (p_alive <= 1))
    assert np.all((p_none >= 0) & (p_none <= 1))
    assert np.all(np.isfinite(expected))
    ceiling = p_alive * (params.r + x) * t / (params.alpha + T)
    assert np.all((expected >= 0) & (expected <= ceiling * (1 + 1e-9)))


def test_a_fifty_purchase_customer_after_three_thousand_days():
    recent = float(bgnbd_expected(DEFAULT_PARAMS, 50.0, 2990.0, 3000.0, 365.0))
    lapsed = float(bgnbd_expected(DEFAULT_PARAMS, 50.0, 100.0, 3000.0, 365.0))

    # About the 6 purchases a year their history shows, discounted by dropout; and
    # nothing from someone silent for 2,900 days after buying every other day
    assert 3.0 < recent < 6.2
    assert 0.0 <= lapsed < 1e-30


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    r=st.floats(0.01, 10.0),
    alpha=st.floats(0.1, 1000.0),
    a=st.floats(0.05, 20.0),
    b=st.floats(0.05, 100.0),
    x=st.integers(0, 100),
    recency=st.floats(0.0, 1.0),
    T=st.floats(0.0, 2000.0),
    t=st.floats(0.0, 2000.0),
)
def test_predictions_are_coherent_probabilities_and_counts(r, alpha, a, b, x, recency, T, t):
    params = BGNBDParams(r=r, alpha=alpha, a=a, b=b)
    t_x = recency * T if x else 0.0

    p_alive = float(bgnbd_p_alive(params, x, t_x, T))
    p_none = float(bgnbd_p_none(params, x, t_x, T, t))
    expected = float(bgnbd_expected(params, x, t_x, T, t))
    longer = float(bgnbd_expected(params, x, t_x, T, t + 30.0))

    assert 0.0 <= p_alive <= 1.0
    # The dead buy nothing, so quiet is at least as likely as dead
    assert 1.0 - p_alive <= p_none + 1e-12 <= 1.0 + 1e-12
    # P(at least one purchase) never exceeds the expected number of purchases
    assert 1.0 - p_none <= expected * (1 + 1e-7) + 1e-12
    assert expected <= longer * (1 + 1e-9)


# --- summarising purchases --------------------------------------------------------------------


def test_summarise_counts_distinct_days_before_the_as_of_date():
    customer = np.array(["b", "a", "a", "a", "b", "a", "c", "d"])
    day = np.array([10.0, 3.0, 3.0, 20.0, 10.0, 50.0, 70.0, 200.0])

    ids, x, t_x, T = summarise(customer, day, as_of=100.0)

    # "a": days 3, 3, 20, 50 -> two repeat days, last 47 days after the first;
    # "b" bought twice on one day; "d" only after the as-of date, so is left out
    assert ids.tolist() == ["a", "b", "c"]
    assert x.tolist() == [2.0, 0.0, 0.0]
    assert t_x.tolist() == [47.0, 0.0, 0.0]
    assert T.tolist() == [97.0, 90.0, 30.0]
