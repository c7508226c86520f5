"""experiments.stats against statsmodels/scipy as references, plus properties and coverage
checked by simulation. No database: these are pure functions."""

from __future__ import annotations

import itertools
import math
import warnings
from decimal import Decimal
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.stats import (
    Lift,
    Mean,
    _control_arm_size,
    achieved_power,
    bootstrap_mean_lift,
    holm,
    mean_from_sums,
    mean_from_values,
    mean_interval,
    mean_lift,
    proportion_lift,
    rate_interval,
    sample_ratio_check,
    sample_size,
)

TOL = 1e-6
FAST = settings(max_examples=100, deadline=None)
ALPHAS = st.sampled_from([0.01, 0.05, 0.1, 0.2])


def close(actual: float, expected: float, tol: float = TOL) -> bool:
    """Equal to ``tol``, relative or absolute, whichever is looser; nan only equals nan."""
    expected = float(expected)
    if math.isnan(expected):
        return math.isnan(actual)
    return math.isclose(actual, expected, rel_tol=tol, abs_tol=tol)


def assert_no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


RELATIVE = frozenset({"relative", "relative_low", "relative_high"})
FIELDS = RELATIVE | {"absolute", "absolute_low", "absolute_high", "p_value"}


def nan_fields(lift: Lift) -> set[str]:
    return {name for name in FIELDS if math.isnan(getattr(lift, name))}


@st.composite
def arm(draw, max_n: int = 200_000) -> tuple[int, int]:
    n = draw(st.integers(1, max_n))
    return draw(st.integers(0, n)), n


# --- references ----------------------------------------------------------------------------


def reference_proportions(control, treatment, alpha):
    (c_s, c_n), (t_s, t_n) = control, treatment
    diff = confint_proportions_2indep(
        count1=t_s, nobs1=t_n, count2=c_s, nobs2=c_n, compare="diff", method="newcomb", alpha=alpha
    )
    ratio = (math.nan, math.nan)
    if t_s > 0 and c_s > 0:
        ratio = confint_proportions_2indep(
            count1=t_s, nobs1=t_n, count2=c_s, nobs2=c_n, compare="ratio", method="log", alpha=alpha
        )
    p_value = math.nan
    if 0 < t_s + c_s < t_n + c_n:
        p_value = proportions_ztest([t_s, c_s], [t_n, c_n])[1]
    return diff, (ratio[0] - 1, ratio[1] - 1), p_value


def check_proportions(control, treatment, alpha):
    lift = proportion_lift(control, treatment, alpha=alpha)
    (low, high), (rel_low, rel_high), p_value = reference_proportions(control, treatment, alpha)
    assert close(lift.absolute, treatment[0] / treatment[1] - control[0] / control[1])
    assert close(lift.absolute_low, low) and close(lift.absolute_high, high)
    assert close(lift.relative_low, rel_low) and close(lift.relative_high, rel_high)
    assert close(lift.p_value, p_value)


def reference_welch(control: np.ndarray, treatment: np.ndarray, alpha: float):
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    p_value = sps.ttest_ind_from_stats(
        treatment.mean(),
        treatment.std(ddof=1),
        treatment.size,
        control.mean(),
        control.std(ddof=1),
        control.size,
        equal_var=False,
    ).pvalue
    return low, high, p_value


def reference_holm(p_values: list[float]) -> list[float]:
    # multipletests runs gc.collect() on every Holm call: ~30 ms each under pytest.
    with mock.patch("gc.collect"):
        return list(multipletests(p_values, method="holm")[1])


def reference_sample_size(baseline, relative_mde, alpha, power, ratio) -> float:
    return NormalIndPower().solve_power(
        effect_size=proportion_effectsize(baseline * (1 + relative_mde), baseline),
        alpha=alpha,
        power=power,
        ratio=ratio,
        alternative="two-sided",
    )


# --- rate_interval -------------------------------------------------------------------------

RATE_GRID = [(0, 10), (1, 10), (10, 10), (5, 100), (30, 1000), (1, 100_000), (49_999, 100_000)]


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
@pytest.mark.parametrize(("successes", "n"), RATE_GRID)
def test_rate_interval_matches_statsmodels_wilson(successes, n, alpha):
    rate = rate_interval(successes, n, alpha=alpha)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    assert (rate.successes, rate.n) == (successes, n)
    assert rate.rate == successes / n
    assert close(rate.low, low) and close(rate.high, high)


@FAST
@given(arm(max_n=10**7), ALPHAS)
def test_rate_interval_property(counts, alpha):
    successes, n = counts
    rate = rate_interval(successes, n, alpha=alpha)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    assert close(rate.low, low) and close(rate.high, high)
    assert 0.0 <= rate.low <= rate.rate <= rate.high <= 1.0


def test_rate_interval_of_nobody_is_nan():
    rate = assert_no_warnings(rate_interval, 0, 0)
    assert rate.n == 0 and math.isnan(rate.rate)
    assert math.isnan(rate.low) and math.isnan(rate.high)


# --- proportion_lift -----------------------------------------------------------------------

PROPORTION_GRID = [
    ((300, 1000), (340, 1000)),
    ((1500, 5000), (1500, 5000)),
    ((52, 2000), (61, 2100)),
    ((4, 90), (11, 85)),
    ((9_100, 100_000), (8_700, 100_000)),
    ((1, 40), (0, 40)),
    ((0, 50), (3, 50)),
    ((20, 20), (18, 20)),
    ((0, 30), (0, 30)),
    ((25, 25), (40, 40)),
]


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize(("control", "treatment"), PROPORTION_GRID)
def test_proportion_lift_matches_statsmodels(control, treatment, alpha):
    assert_no_warnings(check_proportions, control, treatment, alpha)


@FAST
@given(arm(), arm(), ALPHAS)
def test_proportion_lift_property(control, treatment, alpha):
    check_proportions(control, treatment, alpha)
    lift = proportion_lift(control, treatment, alpha=alpha)
    assert lift.absolute_low <= lift.absolute <= lift.absolute_high
    assert lift.absolute_low >= -1.0 and lift.absolute_high <= 1.0
    if not math.isnan(lift.relative_low):
        assert lift.relative_low <= lift.relative <= lift.relative_high


@FAST
@given(arm(), arm())
def test_swapping_arms_negates_the_absolute_lift(a, b):
    forward, backward = proportion_lift(a, b), proportion_lift(b, a)
    assert forward.absolute == -backward.absolute
    assert forward.absolute_low == -backward.absolute_high
    assert forward.absolute_high == -backward.absolute_low
    assert close(forward.p_value, backward.p_value, 1e-12)


@pytest.mark.parametrize(
    ("control", "treatment", "undefined"),
    [
        ((0, 0), (5, 10), FIELDS),
        ((5, 10), (0, 0), FIELDS),
        ((0, 0), (0, 0), FIELDS),
        ((0, 100), (4, 100), RELATIVE),
        ((4, 100), (0, 100), {"relative_low", "relative_high"}),
        ((0, 100), (0, 120), RELATIVE | {"p_value"}),
        ((100, 100), (120, 120), {"p_value"}),
    ],
)
def test_proportion_lift_degenerate_cases_give_nan_quietly(control, treatment, undefined):
    lift = assert_no_warnings(proportion_lift, control, treatment)
    assert nan_fields(lift) == undefined
    assert lift.method.startswith("Newcombe")


def test_proportion_lift_relative_matches_rates():
    lift = proportion_lift((200, 1000), (230, 1000))
    assert lift.relative == pytest.approx(0.15)
    assert lift.absolute == pytest.approx(0.03)


# --- means ---------------------------------------------------------------------------------

CENTS = st.lists(st.integers(0, 100_000), min_size=2, max_size=40)


@FAST
@given(st.lists(st.integers(-100_000, 100_000), max_size=60))
def test_mean_from_sums_matches_numpy(cents):
    values = np.array(cents, dtype=float) / 100
    m = mean_from_sums(len(values), float(values.sum()), float((values**2).sum()))
    assert m.n == len(values)
    if len(values) == 0:
        assert math.isnan(m.mean) and math.isnan(m.variance)
        return
    assert close(m.mean, values.mean())
    if len(values) == 1:
        assert math.isnan(m.variance)
        return
    # One-pass sums lose digits relative to the second moment, hence the absolute part.
    scale = float((values**2).mean())
    assert math.isclose(m.variance, values.var(ddof=1), rel_tol=TOL, abs_tol=1e-12 * scale)
    assert m.variance >= 0.0


def test_mean_from_sums_accepts_decimal_sums_from_sql():
    m = mean_from_sums(4, Decimal("30.00"), Decimal("250.00"))
    assert m == Mean(4, 7.5, (250 - 30 * 7.5) / 3)


def test_mean_from_sums_clamps_rounding_and_rejects_inconsistent_sums():
    values = np.full(1000, 0.1)
    m = mean_from_sums(1000, float(values.sum()), float((values**2).sum()))
    assert m.variance == pytest.approx(0.0, abs=1e-15) and m.variance >= 0.0
    with pytest.raises(ValueError, match="inconsistent sums"):
        mean_from_sums(10, 100.0, 10.0)


def test_mean_from_values_matches_numpy():
    values = np.random.default_rng(3).gamma(0.5, 40.0, size=500)
    m = mean_from_values(values)
    assert m == Mean(500, float(values.mean()), float(values.var(ddof=1)))
    assert math.isnan(mean_from_values([3.0]).variance)
    assert math.isnan(mean_from_values([]).mean)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize("n", [2, 3, 10, 250, 10_000])
def test_mean_interval_matches_t_interval(n, alpha):
    values = np.random.default_rng(n).exponential(25.0, size=n)
    low, high = mean_interval(mean_from_values(values), alpha=alpha)
    ref_low, ref_high = DescrStatsW(values).tconfint_mean(alpha=alpha)
    assert close(low, ref_low) and close(high, ref_high)
    scipy_low, scipy_high = sps.t.interval(
        1 - alpha, n - 1, loc=values.mean(), scale=sps.sem(values)
    )
    assert close(low, scipy_low) and close(high, scipy_high)


def test_mean_interval_needs_two_customers():
    assert all(math.isnan(x) for x in mean_interval(Mean(1, 5.0, math.nan)))
    assert all(math.isnan(x) for x in mean_interval(Mean(0, math.nan, math.nan)))


def _revenue(rng: np.random.Generator, n: int, buy_rate: float, scale: float) -> np.ndarray:
    """Zero-inflated lognormal: most customers buy nothing, a few spend a lot."""
    return np.where(rng.random(n) < buy_rate, rng.lognormal(np.log(scale), 1.0, n), 0.0)


MEAN_CASES = [
    ("poisson", lambda rng: (rng.poisson(1.2, 2000), rng.poisson(1.3, 2000))),
    ("poisson-unequal-n", lambda rng: (rng.poisson(0.4, 300), rng.poisson(0.5, 5000))),
    ("revenue", lambda rng: (_revenue(rng, 3000, 0.1, 40), _revenue(rng, 2500, 0.12, 45))),
    ("normal-unequal-var", lambda rng: (rng.normal(10, 1, 50), rng.normal(10.5, 6, 20))),
    ("tiny", lambda rng: (np.array([1.0, 3.0]), np.array([2.0, 2.5, 9.0]))),
]


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize(("name", "make"), MEAN_CASES)
def test_mean_lift_matches_welch(name, make, alpha):
    control, treatment = (np.asarray(x, dtype=float) for x in make(np.random.default_rng(7)))
    lift = mean_lift(mean_from_values(control), mean_from_values(treatment), alpha=alpha)
    low, high, p_value = reference_welch(control, treatment, alpha)
    assert close(lift.absolute, treatment.mean() - control.mean())
    assert close(lift.absolute_low, low) and close(lift.absolute_high, high)
    assert close(lift.p_value, p_value)
    assert close(lift.relative, treatment.mean() / control.mean() - 1)
    assert lift.relative_low < lift.relative < lift.relative_high
    assert lift.method.startswith("Welch")


@FAST
@given(CENTS, CENTS, ALPHAS)
def test_mean_lift_property(control_cents, treatment_cents, alpha):
    control = np.array(control_cents, dtype=float) / 100
    treatment = np.array(treatment_cents, dtype=float) / 100
    assume(control.var() > 0 or treatment.var() > 0)
    lift = mean_lift(mean_from_values(control), mean_from_values(treatment), alpha=alpha)
    low, high, p_value = reference_welch(control, treatment, alpha)
    assert close(lift.absolute_low, low) and close(lift.absolute_high, high)
    assert close(lift.p_value, p_value)
    assert lift.absolute_low <= lift.absolute <= lift.absolute_high
    if control.mean() > 0 and treatment.mean() > 0:
        assert lift.relative_low <= lift.relative <= lift.relative_high
    swapped = mean_lift(mean_from_values(treatment), mean_from_values(control), alpha=alpha)
    assert swapped.absolute == -lift.absolute
    assert close(swapped.absolute_low, -lift.absolute_high, 1e-12)
    assert close(swapped.p_value, lift.p_value, 1e-12)


def test_mean_lift_relative_is_the_delta_method_on_log_ratio():
    control, treatment = Mean(400, 2.0, 9.0), Mean(500, 2.5, 16.0)
    lift = mean_lift(control, treatment)
    se = math.sqrt(16.0 / (500 * 2.5**2) + 9.0 / (400 * 2.0**2))
    z = sps.norm.ppf(0.975)
    assert close(lift.relative, 0.25)
    assert close(lift.relative_low, 1.25 * math.exp(-z * se) - 1)
    assert close(lift.relative_high, 1.25 * math.exp(z * se) - 1)


@pytest.mark.parametrize(
    ("control", "treatment", "undefined"),
    [
        (Mean(0, math.nan, math.nan), Mean(10, 1.0, 1.0), 7),
        (Mean(1, 2.0, math.nan), Mean(10, 1.0, 1.0), 5),
        (Mean(10, 0.0, 0.0), Mean(10, 1.0, 1.0), 3),
        (Mean(10, -1.0, 4.0), Mean(10, 1.0, 1.0), 3),
        (Mean(10, 2.0, 1.0), Mean(10, 0.0, 0.0), 2),
        (Mean(10, 2.0, 0.0), Mean(10, 3.0, 0.0), 5),
    ],
)
def test_mean_lift_degenerate_cases_give_nan_quietly(control, treatment, undefined):
    lift = assert_no_warnings(mean_lift, control, treatment)
    assert len(nan_fields(lift)) == undefined


# --- bootstrap_mean_lift -------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed_and_p_value_is_welch():
    rng = np.random.default_rng(11)
    control, treatment = _revenue(rng, 1500, 0.1, 40), _revenue(rng, 1500, 0.12, 40)
    first = bootstrap_mean_lift(control, treatment, seed=5)
    assert first == bootstrap_mean_lift(control, treatment, seed=5)
    assert first != bootstrap_mean_lift(control, treatment, seed=6)
    welch = sps.ttest_ind(treatment, control, equal_var=False)
    assert close(first.p_value, welch.pvalue)
    assert close(first.absolute, treatment.mean() - control.mean())
    assert first.absolute_low < first.absolute < first.absolute_high
    assert first.relative_low < first.relative < first.relative_high
    assert first.method.startswith("percentile bootstrap")


def _scipy_percentile(statistic, control, treatment, resamples):
    return sps.bootstrap(
        (treatment, control),
        statistic,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(99),
    ).confidence_interval


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(12)
    control, treatment = _revenue(rng, 800, 0.2, 30), _revenue(rng, 700, 0.25, 30)
    lift = bootstrap_mean_lift(control, treatment, resamples=4000)
    diff = _scipy_percentile(
        lambda t, c, axis: t.mean(axis=axis) - c.mean(axis=axis), control, treatment, 4000
    )
    ratio = _scipy_percentile(
        lambda t, c, axis: t.mean(axis=axis) / c.mean(axis=axis) - 1, control, treatment, 4000
    )
    # Independent Monte Carlo draws: the limits agree to a small share of the width.
    width, rel_width = lift.absolute_high - lift.absolute_low, ratio.high - ratio.low
    assert abs(lift.absolute_low - diff.low) < 0.06 * width
    assert abs(lift.absolute_high - diff.high) < 0.06 * width
    assert abs(lift.relative_low - ratio.low) < 0.06 * rel_width
    assert abs(lift.relative_high - ratio.high) < 0.06 * rel_width


def test_bootstrap_degenerate_cases_give_nan_quietly():
    assert len(nan_fields(assert_no_warnings(bootstrap_mean_lift, [], [1.0, 2.0]))) == 7
    zeros = assert_no_warnings(bootstrap_mean_lift, np.zeros(50), np.ones(50) * 2)
    assert nan_fields(zeros) == {"relative", "relative_low", "relative_high", "p_value"}
    # A control of mostly zeros: some resampled control means are 0, the ratio unbounded.
    sparse = assert_no_warnings(bootstrap_mean_lift, np.r_[np.zeros(9), 5.0], np.ones(10))
    assert nan_fields(sparse) == {"relative_low", "relative_high"}


def test_bootstrap_covers_the_true_lift_on_skewed_revenue():
    rng = np.random.default_rng(2026)
    true_diff, covered = 0.1 * 40 * math.exp(0.5) * (1.2 - 1.0), 0
    experiments = 200
    for _ in range(experiments):
        control, treatment = _revenue(rng, 400, 0.1, 40), _revenue(rng, 400, 0.12, 40)
        lift = bootstrap_mean_lift(control, treatment, resamples=400, seed=int(rng.integers(1e9)))
        covered += lift.absolute_low <= true_diff <= lift.absolute_high
    assert 0.88 <= covered / experiments <= 0.99


# --- coverage by simulation ----------------------------------------------------------------

EXPERIMENTS, CUSTOMERS = 2000, 2000


def _binomial_lifts(rng, p_control, p_treatment):
    controls = rng.binomial(CUSTOMERS, p_control, EXPERIMENTS)
    treatments = rng.binomial(CUSTOMERS, p_treatment, EXPERIMENTS)
    return [
        proportion_lift((int(c), CUSTOMERS), (int(t), CUSTOMERS))
        for c, t in zip(controls, treatments, strict=True)
    ]


def _coverage(lifts, absolute, relative):
    covers_abs = np.mean([x.absolute_low <= absolute <= x.absolute_high for x in lifts])
    covers_rel = np.mean([x.relative_low <= relative <= x.relative_high for x in lifts])
    return covers_abs, covers_rel


def test_proportion_lift_coverage_and_type_one_error():
    rng = np.random.default_rng(20240601)
    covers_abs, covers_rel = _coverage(_binomial_lifts(rng, 0.30, 0.33), 0.03, 0.1)
    assert 0.93 <= covers_abs <= 0.97
    assert 0.93 <= covers_rel <= 0.97
    null = _binomial_lifts(rng, 0.30, 0.30)
    assert 0.035 <= np.mean([x.p_value < 0.05 for x in null]) <= 0.065
    covers_abs, covers_rel = _coverage(null, 0.0, 0.0)
    assert 0.93 <= covers_abs <= 0.97 and 0.93 <= covers_rel <= 0.97


def _poisson_lifts(rng, rate_control, rate_treatment):
    lifts = []
    for rate in (rate_control, rate_treatment):
        counts = rng.poisson(rate, (EXPERIMENTS, CUSTOMERS)).astype(float)
        sums, squares = counts.sum(axis=1), (counts**2).sum(axis=1)
        lifts.append([mean_from_sums(CUSTOMERS, s, q) for s, q in zip(sums, squares, strict=True)])
    return [mean_lift(c, t) for c, t in zip(*lifts, strict=True)]


def test_mean_lift_coverage_and_type_one_error_on_poisson_counts():
    rng = np.random.default_rng(20240602)
    covers_abs, covers_rel = _coverage(_poisson_lifts(rng, 1.0, 1.1), 0.1, 0.1)
    assert 0.93 <= covers_abs <= 0.97
    assert 0.93 <= covers_rel <= 0.97
    null = _poisson_lifts(rng, 0.5, 0.5)
    assert 0.035 <= np.mean([x.p_value < 0.05 for x in null]) <= 0.065
    covers_abs, covers_rel = _coverage(null, 0.0, 0.0)
    assert 0.93 <= covers_abs <= 0.97 and 0.93 <= covers_rel <= 0.97


# --- sample size and power -----------------------------------------------------------------

PLANS = list(
    itertools.product(
        [0.01, 0.05, 0.2, 0.5],  # baseline
        [0.02, 0.1, -0.1, 0.3, -0.5],  # relative_mde
        [0.05, 0.01],  # alpha
        [0.8, 0.9],  # power
        [1.0, 0.5, 3.0],  # ratio
    )
)


@pytest.mark.parametrize(("baseline", "mde", "alpha", "power", "ratio"), PLANS)
def test_sample_size_matches_statsmodels(baseline, mde, alpha, power, ratio):
    reference = reference_sample_size(baseline, mde, alpha, power, ratio)
    exact = _control_arm_size(
        2 * math.asin(math.sqrt(baseline * (1 + mde))) - 2 * math.asin(math.sqrt(baseline)),
        alpha,
        power,
        ratio,
    )
    assert close(exact, reference)
    n = sample_size(baseline, mde, alpha=alpha, power=power, ratio=ratio)
    assert n == math.ceil(reference)
    assert achieved_power(n, baseline, mde, alpha=alpha, ratio=ratio) >= power
    assert achieved_power(n - 1, baseline, mde, alpha=alpha, ratio=ratio) < power


def test_sample_size_textbook_case():
    # 5% -> 5.5% conversion, 80% power, 5% two-sided: about 31k customers per arm.
    assert sample_size(0.05, 0.10) == 31_218


@FAST
@given(
    st.floats(0.005, 0.6),
    st.floats(0.03, 0.8),
    st.booleans(),
    ALPHAS,
    st.floats(0.5, 0.99),
    st.floats(0.2, 5.0),
)
def test_sample_size_property(baseline, size, negative, alpha, power, ratio):
    mde = -size if negative else size
    assume(baseline * (1 + mde) < 1 and power > alpha)
    n = sample_size(baseline, mde, alpha=alpha, power=power, ratio=ratio)
    assert achieved_power(n, baseline, mde, alpha=alpha, ratio=ratio) >= power
    assert n == 1 or achieved_power(n - 1, baseline, mde, alpha=alpha, ratio=ratio) < power
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' root finder is noisy at tiny n
        reference = reference_sample_size(baseline, mde, alpha, power, ratio)
    assume(not math.isnan(reference) and reference >= 20)  # its solver is loose below
    h = proportion_effectsize(baseline * (1 + mde), baseline)
    assert close(_control_arm_size(h, alpha, power, ratio), reference)


@FAST
@given(st.integers(0, 10**6), st.floats(0.01, 0.9), st.floats(-0.5, 0.5), ALPHAS, st.floats(0.2, 5))
def test_achieved_power_matches_statsmodels(n, baseline, mde, alpha, ratio):
    assume(abs(mde) > 1e-3 and baseline * (1 + mde) < 1)
    power = achieved_power(n, baseline, mde, alpha=alpha, ratio=ratio)
    if n == 0:
        assert close(power, alpha)
        return
    h = proportion_effectsize(baseline * (1 + mde), baseline)
    assert close(power, NormalIndPower().power(h, n, alpha, ratio=ratio))
    assert alpha <= power <= 1.0


# --- sample_ratio_check --------------------------------------------------------------------


def test_sample_ratio_check_flags_a_real_mismatch_only():
    flagged = sample_ratio_check(
        {"control": 5300, "treatment": 4700}, {"control": 50, "treatment": 50}
    )
    assert flagged.mismatch and flagged.p_value < 1e-6
    assert flagged.expected == {"control": 5000.0, "treatment": 5000.0}
    fine = sample_ratio_check(
        {"control": 5020, "treatment": 4980}, {"control": 0.5, "treatment": 0.5}
    )
    assert not fine.mismatch and fine.p_value > 0.5


@FAST
@given(st.lists(st.tuples(st.integers(0, 100_000), st.floats(0.05, 10.0)), min_size=2, max_size=5))
def test_sample_ratio_check_matches_scipy_chisquare(arms):
    observed = {f"arm{i}": count for i, (count, _) in enumerate(arms)}
    weights = {f"arm{i}": weight for i, (_, weight) in enumerate(arms)}
    result = sample_ratio_check(observed, weights)
    total = sum(observed.values())
    if total == 0:
        assert (result.chi2, result.p_value, result.mismatch) == (0.0, 1.0, False)
        return
    expected = [total * w / sum(weights.values()) for w in weights.values()]
    reference = sps.chisquare(list(observed.values()), expected)
    assert close(result.chi2, reference.statistic)
    assert close(result.p_value, reference.pvalue)
    assert result.mismatch == (result.p_value < 0.001)
    assert close(sum(result.expected.values()), total)


def test_sample_ratio_check_three_arms_and_no_traffic():
    result = sample_ratio_check({"a": 5000, "b": 2600, "c": 2400}, {"a": 2, "b": 1, "c": 1})
    reference = sps.chisquare([5000, 2600, 2400], [5000, 2500, 2500])
    assert close(result.p_value, reference.pvalue) and not result.mismatch
    empty = sample_ratio_check({"a": 0, "b": 0}, {"a": 1, "b": 1})
    assert (empty.chi2, empty.p_value, empty.mismatch) == (0.0, 1.0, False)


# --- holm ----------------------------------------------------------------------------------


@FAST
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10))
def test_holm_matches_statsmodels(p_values):
    reference = reference_holm(p_values)
    assert all(close(a, b, 1e-12) for a, b in zip(holm(p_values), reference, strict=True))


def test_holm_passes_nan_through_and_ignores_it_in_the_count():
    adjusted = holm([0.01, math.nan, 0.04, 0.03])
    reference = reference_holm([0.01, 0.04, 0.03])
    assert math.isnan(adjusted[1])
    assert [adjusted[0], adjusted[2], adjusted[3]] == pytest.approx(list(reference))
    assert holm([]) == []


# --- bad input -----------------------------------------------------------------------------

BAD_INPUT = [
    (lambda: rate_interval(-1, 10), "successes must be >= 0"),
    (lambda: rate_interval(1, -10), "n must be >= 0"),
    (lambda: rate_interval(11, 10), r"successes \(11\) must not exceed n \(10\)"),
    (lambda: rate_interval(1.5, 10), "successes must be an integer"),
    (lambda: rate_interval(1, 10, alpha=1.5), r"alpha must be in \(0, 1\)"),
    (lambda: proportion_lift((5, 4), (1, 10)), "control successes"),
    (lambda: proportion_lift((1, 10), (1, -1)), "treatment n must be >= 0"),
    (lambda: proportion_lift((1, 10), (1, 2, 3)), "treatment must be a"),
    (lambda: mean_from_sums(-1, 0.0, 0.0), "n must be >= 0"),
    (lambda: mean_from_sums(3, 1.0, -1.0), "total_sq"),
    (lambda: mean_from_sums(0, 1.0, 1.0), "n == 0 needs"),
    (lambda: mean_from_sums(3, math.nan, 1.0), "total must be a finite number"),
    (lambda: mean_interval((3, 1.0, 1.0)), "m must be a Mean"),
    (lambda: mean_lift(Mean(3, 1.0, 1.0), Mean(3, 1.0, 1.0), alpha=0), "alpha"),
    (lambda: bootstrap_mean_lift([1.0, math.nan], [1.0]), "finite numbers only"),
    (lambda: bootstrap_mean_lift(np.ones((2, 2)), [1.0]), "one-dimensional"),
    (lambda: bootstrap_mean_lift([1.0], [1.0], resamples=0), "resamples must be >= 1"),
    (lambda: sample_size(0.0, 0.1), r"baseline must be in \(0, 1\)"),
    (lambda: sample_size(1.0, 0.1), r"baseline must be in \(0, 1\)"),
    (lambda: sample_size(0.6, 0.8), r"treatment rate .* must be in \(0, 1\)"),
    (lambda: sample_size(0.5, -1.0), r"treatment rate .* must be in \(0, 1\)"),
    (lambda: sample_size(0.5, 0.0), "relative_mde must not be 0"),
    (lambda: sample_size(0.5, 1e-17), "too small to tell from no effect"),
    (lambda: sample_size(0.5, 0.1, power=0.01), "power .* must exceed alpha"),
    (lambda: sample_size(0.5, 0.1, ratio=0), "ratio .* must be > 0"),
    (lambda: achieved_power(-5, 0.5, 0.1), "n_control must be >= 0"),
    (lambda: sample_ratio_check({"a": 1, "b": 1}, {"a": 1, "b": 0}), "weight of 'b' must be"),
    (lambda: sample_ratio_check({"a": 1, "b": 1}, {"a": 1, "b": -2}), "must be positive"),
    (lambda: sample_ratio_check({"a": 1}, {"a": 1}), "at least two arms"),
    (lambda: sample_ratio_check({"a": 1, "c": 1}, {"a": 1, "b": 1}), r"missing: \['b'\]"),
    (lambda: sample_ratio_check({"a": -1, "b": 1}, {"a": 1, "b": 1}), "count of 'a'"),
    (lambda: sample_ratio_check({"a": 1, "b": 1}, {"a": 1, "b": 1}, threshold=0), "threshold"),
    (lambda: holm([0.5, 1.5]), r"p_values\[1\] must be a p-value in \[0, 1\]"),
    (lambda: holm([0.5, math.inf]), r"p_values\[1\] must be a finite number"),
]


@pytest.mark.parametrize(("call", "message"), BAD_INPUT)
def test_bad_input_raises_value_error_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()
