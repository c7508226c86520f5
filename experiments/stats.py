"""Statistics for A/B tests and holdouts on customers. Pure numpy/scipy, no Django.

Each function, the method it uses, and why:

- ``rate_interval``: Wilson score interval. Unlike the Wald interval it stays inside [0, 1]
  and keeps close to nominal coverage for small n and for rates near 0 or 1 (conversion
  rates of a few percent are the common case here).
- ``proportion_lift``: absolute lift ``p_t - p_c`` with Newcombe's hybrid score interval
  (built from the two Wilson intervals): good coverage without iteration, and swapping the
  arms exactly negates it. Relative lift ``p_t / p_c - 1`` with the Katz log risk-ratio
  interval: the ratio is skewed, its log is close to normal. p-value from the pooled
  two-proportion z-test (two-sided), the textbook test of "no difference" whose null
  variance uses the pooled rate, as the null says both arms share it.
- ``mean_from_sums``: mean and sample variance (ddof=1) from ``n``, ``sum x`` and
  ``sum x**2``, which SQL aggregates give in one pass. The variance is ``nan`` for n < 2
  (undefined, rather than a 0 that would give zero-width intervals).
- ``mean_interval``: Student t interval with n - 1 degrees of freedom.
- ``mean_lift``: Welch's unequal-variance t interval for the difference of means with
  Welch-Satterthwaite degrees of freedom, and Welch's t-test for the p-value: the arms'
  variances differ whenever the treatment works, and Welch costs nothing when they don't.
  Relative lift ``m_t / m_c - 1`` by the delta method on the log of the ratio of means,
  ``Var(log m_t - log m_c) ~ s_t**2 / (n_t m_t**2) + s_c**2 / (n_c m_c**2)``, with a normal
  interval exponentiated back (asymmetric, like the ratio); it needs both means > 0.
- ``bootstrap_mean_lift``: percentile bootstrap (arms resampled independently) of the
  difference and of the relative lift, for skewed metrics such as revenue per customer
  where a few large orders make the t interval's normality doubtful at moderate n.
  Its p-value is Welch's test on the same data; deterministic for a given seed.
- ``sample_size`` and ``achieved_power``: the normal approximation on Cohen's h
  (``2 asin sqrt(p_t) - 2 asin sqrt(p_c)``, which stabilises the binomial variance),
  two-sided, the same model as statsmodels' ``NormalIndPower`` with
  ``proportion_effectsize``; the power equation is solved with ``scipy.optimize.brentq``.
- ``sample_ratio_check``: Pearson chi-square goodness of fit of the assignment counts to
  the configured weights. A sample ratio mismatch (SRM) is flagged at p < 0.001, the usual
  convention: the check runs on every experiment, often many times, so it must almost
  never cry wolf, while a real assignment bug on thousands of customers gives p far below.
- ``holm``: Holm-Bonferroni step-down adjusted p-values, for several treatment arms
  against one control: controls the family-wise error rate under any dependence between
  the comparisons (they share the control) and is uniformly more powerful than Bonferroni.

Undefined quantities (an empty arm, a zero control rate, a zero standard error) come back
as ``nan`` in the affected fields, without warnings; invalid input raises ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special

NAN = float("nan")

# Largest x with math.exp(x) finite; above it an upper limit is +inf.
_EXP_MAX = 709.0
# Bootstrap index draws per chunk: bounds the memory (8 bytes each) for large arms.
_BOOTSTRAP_CHUNK_DRAWS = 4_000_000
# A sum of squared deviations this negative (relative to sum x**2) is not rounding.
_SUMS_RTOL = 1e-9


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """A proportion with its (1 - alpha) interval."""

    successes: int
    n: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class Lift:
    """Treatment against control. ``relative`` is a fraction: 0.10 means +10%."""

    absolute: float
    absolute_low: float
    absolute_high: float
    relative: float
    relative_low: float
    relative_high: float
    p_value: float
    method: str


@dataclass(frozen=True)
class Mean:
    """A sample mean with its sample variance (ddof=1; nan for n < 2)."""

    n: int
    mean: float
    variance: float


@dataclass(frozen=True)
class SampleRatio:
    """Assignment counts against the configured split; ``expected`` holds counts."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    mismatch: bool


PROPORTION_METHOD = (
    "Newcombe hybrid score interval; Katz log risk-ratio interval; pooled two-proportion z-test"
)
MEAN_METHOD = (
    "Welch t interval (Welch-Satterthwaite df); delta-method log ratio-of-means interval; "
    "Welch t-test"
)
BOOTSTRAP_METHOD = "percentile bootstrap of the difference and of the ratio of means; Welch t-test"


# --- validation ----------------------------------------------------------------------------


def _check_int(value: object, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(value: object, name: str) -> float:
    """A finite float; Decimal is accepted too, as money sums come out of SQL that way."""
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def _check_open_unit(value: object, name: str) -> float:
    number = _check_real(value, name)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return number


def _check_counts(successes: object, n: object, arm: str = "") -> tuple[int, int]:
    prefix = f"{arm} " if arm else ""
    n = _check_int(n, f"{prefix}n")
    successes = _check_int(successes, f"{prefix}successes")
    if successes > n:
        raise ValueError(f"{prefix}successes ({successes}) must not exceed n ({n})")
    return successes, n


def _check_pair(pair: object, arm: str) -> tuple[int, int]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise ValueError(f"{arm} must be a (successes, n) pair, got {pair!r}")
    return _check_counts(pair[0], pair[1], arm)


# --- distributions (scipy.special ufuncs: the scipy.stats objects are slow per call) -------


def _z_crit(alpha: float) -> float:
    """Two-sided standard normal critical value, z with P(|Z| > z) = alpha."""
    return float(-special.ndtri(alpha / 2.0))


def _normal_two_sided_p(z: float) -> float:
    return float(2.0 * special.ndtr(-abs(z)))


def _t_crit(alpha: float, df: float) -> float:
    return float(-special.stdtrit(df, alpha / 2.0))


def _t_two_sided_p(t: float, df: float) -> float:
    return float(2.0 * special.stdtr(df, -abs(t)))


def _exp(x: float) -> float:
    return math.inf if x > _EXP_MAX else math.exp(x)


def _log_interval(log_ratio: float, se: float, z: float) -> tuple[float, float]:
    """A normal interval on the log scale, mapped back to a relative lift (ratio - 1)."""
    return _exp(log_ratio - z * se) - 1.0, _exp(log_ratio + z * se) - 1.0


# --- proportions ---------------------------------------------------------------------------


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    z2_n = z * z / n
    denom = 1.0 + z2_n
    center = (p + z2_n / 2.0) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2_n / (4.0 * n)) / denom
    # The limits at 0 and n are exactly 0 and 1; rounding must not move them off.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def rate_interval(successes: int, n: int, *, alpha: float = 0.05) -> Rate:
    """``successes / n`` with its Wilson score interval; all nan when n == 0."""
    successes, n = _check_counts(successes, n)
    alpha = _check_open_unit(alpha, "alpha")
    if n == 0:
        return Rate(successes=0, n=0, rate=NAN, low=NAN, high=NAN)
    low, high = _wilson(successes, n, _z_crit(alpha))
    return Rate(successes=successes, n=n, rate=successes / n, low=low, high=high)


def _newcombe(
    control: tuple[int, int], treatment: tuple[int, int], z: float
) -> tuple[float, float]:
    (c_s, c_n), (t_s, t_n) = control, treatment
    p_c, p_t = c_s / c_n, t_s / t_n
    c_low, c_high = _wilson(c_s, c_n, z)
    t_low, t_high = _wilson(t_s, t_n, z)
    diff = p_t - p_c
    low = diff - math.sqrt((p_t - t_low) ** 2 + (c_high - p_c) ** 2)
    high = diff + math.sqrt((t_high - p_t) ** 2 + (p_c - c_low) ** 2)
    return low, high


def _katz(
    control: tuple[int, int], treatment: tuple[int, int], z: float
) -> tuple[float, float, float]:
    """Relative lift and its log risk-ratio interval; nan where undefined."""
    (c_s, c_n), (t_s, t_n) = control, treatment
    if c_s == 0:
        return NAN, NAN, NAN
    ratio = (t_s / t_n) / (c_s / c_n)
    if t_s == 0:  # ratio 0: its log, and the interval, are undefined
        return ratio - 1.0, NAN, NAN
    se = math.sqrt(1.0 / t_s - 1.0 / t_n + 1.0 / c_s - 1.0 / c_n)
    low, high = _log_interval(math.log(ratio), se, z)
    return ratio - 1.0, low, high


def _pooled_z_p(control: tuple[int, int], treatment: tuple[int, int]) -> float:
    (c_s, c_n), (t_s, t_n) = control, treatment
    pooled = (c_s + t_s) / (c_n + t_n)
    variance = pooled * (1.0 - pooled) * (1.0 / c_n + 1.0 / t_n)
    if variance <= 0.0:  # no successes, or only successes, in both arms
        return NAN
    return _normal_two_sided_p((t_s / t_n - c_s / c_n) / math.sqrt(variance))


def proportion_lift(
    control: tuple[int, int], treatment: tuple[int, int], *, alpha: float = 0.05
) -> Lift:
    """Treatment against control for a rate; each arm is ``(successes, n)``."""
    control = _check_pair(control, "control")
    treatment = _check_pair(treatment, "treatment")
    alpha = _check_open_unit(alpha, "alpha")
    if control[1] == 0 or treatment[1] == 0:
        return _nan_lift(PROPORTION_METHOD)
    z = _z_crit(alpha)
    low, high = _newcombe(control, treatment, z)
    relative, relative_low, relative_high = _katz(control, treatment, z)
    return Lift(
        absolute=treatment[0] / treatment[1] - control[0] / control[1],
        absolute_low=low,
        absolute_high=high,
        relative=relative,
        relative_low=relative_low,
        relative_high=relative_high,
        p_value=_pooled_z_p(control, treatment),
        method=PROPORTION_METHOD,
    )


def _nan_lift(method: str, absolute: float = NAN) -> Lift:
    return Lift(absolute, NAN, NAN, NAN, NAN, NAN, NAN, method)


# --- means ---------------------------------------------------------------------------------


def mean_from_sums(n: int, total: float, total_sq: float) -> Mean:
    """Mean and sample variance from ``n``, ``sum x`` and ``sum x**2``.

    The sum of squared deviations is ``total_sq - total * mean`` (one subtraction, no
    ``total**2`` that could overflow); a slightly negative result is rounding and becomes 0.
    These one-pass sums lose precision when the spread is tiny next to the mean (e.g. values
    near 1e6 varying by 0.01); for counts and revenue per customer they are fine.
    ``mean`` is nan for n == 0 and ``variance`` is nan for n < 2.
    """
    n = _check_int(n, "n")
    total = _check_real(total, "total")
    total_sq = _check_real(total_sq, "total_sq")
    if total_sq < 0.0:
        raise ValueError(f"total_sq is a sum of squares and must be >= 0, got {total_sq}")
    if n == 0:
        if total != 0.0 or total_sq != 0.0:
            raise ValueError("n == 0 needs total == 0 and total_sq == 0")
        return Mean(n=0, mean=NAN, variance=NAN)
    mean = total / n
    if n == 1:
        return Mean(n=1, mean=mean, variance=NAN)
    squared_deviations = total_sq - total * mean
    if squared_deviations < -_SUMS_RTOL * total_sq:
        raise ValueError(
            f"inconsistent sums: total_sq ({total_sq}) < total**2 / n ({total * mean})"
        )
    return Mean(n=n, mean=mean, variance=max(squared_deviations, 0.0) / (n - 1))


def _sample(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers only (no nan or inf)")
    return array


def mean_from_values(values: ArrayLike) -> Mean:
    """Mean and sample variance (ddof=1) of a 1-D array, computed two-pass by numpy."""
    array = _sample(values, "values")
    n = int(array.size)
    if n == 0:
        return Mean(n=0, mean=NAN, variance=NAN)
    mean = float(array.mean())
    variance = float(array.var(ddof=1)) if n > 1 else NAN
    return Mean(n=n, mean=mean, variance=variance)


def _check_mean(m: object, name: str) -> Mean:
    if not isinstance(m, Mean):
        raise ValueError(f"{name} must be a Mean, got {type(m).__name__}")
    return m


def mean_interval(m: Mean, *, alpha: float = 0.05) -> tuple[float, float]:
    """Student t interval for the mean; (nan, nan) when n < 2."""
    m = _check_mean(m, "m")
    alpha = _check_open_unit(alpha, "alpha")
    if m.n < 2:
        return NAN, NAN
    half = _t_crit(alpha, m.n - 1) * math.sqrt(m.variance / m.n)
    return m.mean - half, m.mean + half


def _welch(control: Mean, treatment: Mean, alpha: float) -> tuple[float, float, float]:
    """Welch interval for the difference of means and the two-sided p-value."""
    var_c, var_t = control.variance / control.n, treatment.variance / treatment.n
    var = var_c + var_t
    if not var > 0.0:  # n < 2 somewhere (nan), or no spread in either arm
        return NAN, NAN, NAN
    # Welch-Satterthwaite, written with the shares of the variance so nothing underflows.
    df = 1.0 / ((var_c / var) ** 2 / (control.n - 1) + (var_t / var) ** 2 / (treatment.n - 1))
    se = math.sqrt(var)
    diff = treatment.mean - control.mean
    half = _t_crit(alpha, df) * se
    return diff - half, diff + half, _t_two_sided_p(diff / se, df)


def _ratio_of_means(control: Mean, treatment: Mean, alpha: float) -> tuple[float, float, float]:
    """Relative lift of the means with the delta-method log interval; nan where undefined."""
    if not control.mean > 0.0:
        return NAN, NAN, NAN
    ratio = treatment.mean / control.mean
    if not treatment.mean > 0.0:  # ratio 0 or negative: no log
        return ratio - 1.0, NAN, NAN
    se = math.sqrt(
        treatment.variance / (treatment.n * treatment.mean**2)
        + control.variance / (control.n * control.mean**2)
    )
    if not se > 0.0:  # n < 2 somewhere (nan), or no spread in either arm, as in Welch
        return ratio - 1.0, NAN, NAN
    low, high = _log_interval(math.log(ratio), se, _z_crit(alpha))
    return ratio - 1.0, low, high


def mean_lift(control: Mean, treatment: Mean, *, alpha: float = 0.05) -> Lift:
    """Treatment against control for a mean (Welch; delta method for the relative lift)."""
    control = _check_mean(control, "control")
    treatment = _check_mean(treatment, "treatment")
    alpha = _check_open_unit(alpha, "alpha")
    if control.n == 0 or treatment.n == 0:
        return _nan_lift(MEAN_METHOD)
    low, high, p_value = _welch(control, treatment, alpha)
    relative, relative_low, relative_high = _ratio_of_means(control, treatment, alpha)
    return Lift(
        absolute=treatment.mean - control.mean,
        absolute_low=low,
        absolute_high=high,
        relative=relative,
        relative_low=relative_low,
        relative_high=relative_high,
        p_value=p_value,
        method=MEAN_METHOD,
    )


def _bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` resamples with replacement, drawn in memory-bounded chunks."""
    n = values.size
    means = np.empty(resamples)
    chunk = max(1, _BOOTSTRAP_CHUNK_DRAWS // n)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def _percentile_interval(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_mean_lift(
    control: ArrayLike,
    treatment: ArrayLike,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> Lift:
    """Treatment against control for a skewed per-customer metric (e.g. revenue).

    Percentile bootstrap intervals for the difference and the relative lift; point
    estimates and the p-value (Welch) come from the data themselves. The relative interval
    is nan when any resampled control mean is <= 0 (the ratio is then unbounded).
    Cost is ``resamples * (n_c + n_t)`` random draws.
    """
    control_values = _sample(control, "control")
    treatment_values = _sample(treatment, "treatment")
    alpha = _check_open_unit(alpha, "alpha")
    resamples = _check_int(resamples, "resamples", minimum=1)
    seed = _check_int(seed, "seed")
    welch = mean_lift(
        mean_from_values(control_values), mean_from_values(treatment_values), alpha=alpha
    )
    if control_values.size == 0 or treatment_values.size == 0:
        return _nan_lift(BOOTSTRAP_METHOD)
    rng = np.random.default_rng(seed)
    boot_control = _bootstrap_means(control_values, resamples, rng)
    boot_treatment = _bootstrap_means(treatment_values, resamples, rng)
    low, high = _percentile_interval(boot_treatment - boot_control, alpha)
    relative_low = relative_high = NAN
    if not math.isnan(welch.relative) and (boot_control > 0.0).all():
        relative_low, relative_high = _percentile_interval(
            boot_treatment / boot_control - 1.0, alpha
        )
    return Lift(
        absolute=welch.absolute,
        absolute_low=low,
        absolute_high=high,
        relative=welch.relative,
        relative_low=relative_low,
        relative_high=relative_high,
        p_value=welch.p_value,
        method=BOOTSTRAP_METHOD,
    )


# --- planning ------------------------------------------------------------------------------


def _cohens_h(baseline: float, relative_mde: float) -> float:
    baseline = _check_open_unit(baseline, "baseline")
    relative_mde = _check_real(relative_mde, "relative_mde")
    if relative_mde == 0.0:
        raise ValueError("relative_mde must not be 0")
    target = baseline * (1.0 + relative_mde)
    if not 0.0 < target < 1.0:
        raise ValueError(
            f"the treatment rate baseline * (1 + relative_mde) = {target} must be in (0, 1)"
        )
    h = 2.0 * math.asin(math.sqrt(target)) - 2.0 * math.asin(math.sqrt(baseline))
    if h == 0.0:
        raise ValueError(f"relative_mde {relative_mde} is too small to tell from no effect")
    return h


def _check_ratio(ratio: object) -> float:
    ratio = _check_real(ratio, "ratio")
    if ratio <= 0.0:
        raise ValueError(f"ratio (treatment n / control n) must be > 0, got {ratio}")
    return ratio


def _power(shift: float, alpha: float) -> float:
    """Two-sided power of a z-test whose statistic has mean ``shift`` under the alternative
    (both rejection tails, as statsmodels' ``normal_power``)."""
    crit = _z_crit(alpha)
    return float(special.ndtr(shift - crit) + special.ndtr(-crit - shift))


def _control_arm_size(h: float, alpha: float, power: float, ratio: float) -> float:
    """The exact (fractional) control-arm size at which the power equals ``power``."""
    # Power rises with the shift h * sqrt(n_eff) from alpha at 0; at crit + z_power the
    # upper tail alone already reaches ``power``.
    upper = _z_crit(alpha) - float(special.ndtri(1.0 - power)) + 1.0
    shift = optimize.brentq(lambda x: _power(x, alpha) - power, 0.0, upper, xtol=1e-13)
    effective_n = (
        shift / abs(h)
    ) ** 2  # n_eff = n_c * n_t / (n_c + n_t) = n_c * ratio / (1 + ratio)
    return effective_n * (1.0 + ratio) / ratio


def achieved_power(
    n_control: int,
    baseline: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    ratio: float = 1.0,
) -> float:
    """Two-sided power with ``n_control`` customers in control and ``ratio * n_control`` in
    treatment to detect ``baseline * (1 + relative_mde)`` against ``baseline``."""
    n_control = _check_int(n_control, "n_control")
    h = _cohens_h(baseline, relative_mde)
    alpha = _check_open_unit(alpha, "alpha")
    ratio = _check_ratio(ratio)
    effective_n = n_control * ratio / (1.0 + ratio)
    return _power(abs(h) * math.sqrt(effective_n), alpha)


def sample_size(
    baseline: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> int:
    """Customers needed in the control arm (the treatment arm needs ``ceil(ratio * n)``) for
    a two-sided test at ``alpha`` to detect ``baseline * (1 + relative_mde)`` with
    ``power``: the smallest n with ``achieved_power(n, ...) >= power``."""
    h = _cohens_h(baseline, relative_mde)
    alpha = _check_open_unit(alpha, "alpha")
    power = _check_open_unit(power, "power")
    if power <= alpha:
        raise ValueError(f"power ({power}) must exceed alpha ({alpha})")
    ratio = _check_ratio(ratio)
    n = max(1, math.ceil(_control_arm_size(h, alpha, power, ratio)))

    # brentq is exact to ~1e-13; settle the last-ulp cases so n is the smallest that works.
    def enough(k: int) -> bool:
        return achieved_power(k, baseline, relative_mde, alpha=alpha, ratio=ratio) >= power

    while not enough(n):
        n += 1
    while n > 1 and enough(n - 1):
        n -= 1
    return n


# --- assignment and multiplicity -----------------------------------------------------------


def sample_ratio_check(
    observed: dict[str, int], weights: dict[str, float], *, threshold: float = 0.001
) -> SampleRatio:
    """Chi-square goodness of fit of the arms' assignment counts to their weights.

    ``weights`` need not sum to 1 (50/50 and 1/1 are the same split); ``mismatch`` when
    p < ``threshold``. No assignments at all is no evidence: chi2 0, p 1, no mismatch.
    """
    threshold = _check_open_unit(threshold, "threshold")
    if len(weights) < 2:
        raise ValueError(f"weights needs at least two arms, got {len(weights)}")
    if set(observed) != set(weights):
        missing = sorted(set(weights) - set(observed))
        extra = sorted(set(observed) - set(weights))
        raise ValueError(
            f"observed and weights must name the same arms (missing: {missing}, extra: {extra})"
        )
    for arm, weight in weights.items():
        if not _check_real(weight, f"weight of {arm!r}") > 0.0:
            raise ValueError(f"weight of {arm!r} must be positive, got {weight}")
    counts = {arm: _check_int(observed[arm], f"count of {arm!r}") for arm in weights}
    total = sum(counts.values())
    weight_sum = math.fsum(weights.values())
    expected = {arm: total * weight / weight_sum for arm, weight in weights.items()}
    if total == 0:
        return SampleRatio(counts, expected, chi2=0.0, p_value=1.0, mismatch=False)
    chi2 = math.fsum((counts[arm] - e) ** 2 / e for arm, e in expected.items())
    p_value = float(special.chdtrc(len(weights) - 1, chi2))
    return SampleRatio(counts, expected, chi2=chi2, p_value=p_value, mismatch=p_value < threshold)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order. A nan (a comparison that could
    not be made) stays nan and does not count towards the number of tests."""
    values = [_check_p_value(p, f"p_values[{i}]") for i, p in enumerate(p_values)]
    present = sorted((i for i, p in enumerate(values) if not math.isnan(p)), key=values.__getitem__)
    adjusted = [NAN] * len(values)
    running = 0.0
    for rank, i in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * values[i]))
        adjusted[i] = running
    return adjusted


def _check_p_value(value: object, name: str) -> float:
    if isinstance(value, float | np.floating) and math.isnan(value):
        return NAN
    p = _check_real(value, name)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a p-value in [0, 1], got {p}")
    return p
