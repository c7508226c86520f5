"""The BG/NBD buy-till-you-die model (Fader, Hardie & Lee 2005), in days.

Pure numpy/scipy, no Django: the churn scorer uses these numbers as features and,
for stores too small to train a classifier, as the model itself.

Per customer: ``x`` is the number of repeat purchase days (purchase days after the
first one), ``t_x`` the day of the last purchase counted from the first purchase,
``T`` the days from the first purchase to the as-of date. While alive a customer
buys at rate ``lambda ~ Gamma(r, rate alpha)``; after each repeat purchase they drop
out for good with probability ``p ~ Beta(a, b)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, optimize, special
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    converged: bool = True  # False: fell back to priors, no repeat buyers, or optimiser failed
    n: int = 0  # customers the fit used

    def as_dict(self) -> dict:
        return {k: (v if isinstance(v, bool | int) else float(v)) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> BGNBDParams:
        return cls(
            r=float(d["r"]),
            alpha=float(d["alpha"]),
            a=float(d["a"]),
            b=float(d["b"]),
            converged=bool(d.get("converged", True)),
            n=int(d.get("n", 0)),
        )


# The published CDNOW fit (FHL 2005: r=0.243, alpha=4.414 weeks, a=0.793, b=2.426),
# converted to days and rounded: about three purchases a year while active
# (r/alpha = 1/120 per day), strong heterogeneity in rate (r < 1), and a one in four
# chance of leaving after each repeat purchase (a/(a+b) = 0.25). That is typical of
# online retail, so it is the centre of the fit's prior and the model of last resort.
DEFAULT_PARAMS = BGNBDParams(r=0.25, alpha=30.0, a=0.8, b=2.4, converged=False, n=0)

# Normal prior on each log-parameter, centred on DEFAULT_PARAMS. It is added to the
# total negative log-likelihood, so its weight relative to the data shrinks like 1/n:
# it only matters where the data say nothing (no repeat buyers leave a and b unidentified,
# a handful of customers leave r and alpha on a ridge). One sd is a factor e^2 ~ 7.
PRIOR_SD = 2.0
# Box on the parameters (days), wide enough for any store, narrow enough to keep
# gammaln and the powers finite.
LOWER = np.log([1e-4, 1e-3, 1e-4, 1e-4])
UPPER = np.log([1e3, 1e6, 1e3, 1e4])


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=float) for v in np.broadcast_arrays(*values)]


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    """u . v without BLAS, whose threads spin on a busy worker (see ``bgnbd_fit``)."""
    return float(np.sum(u * v))


def _compress(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Identical (x, t_x, T) rows merged, their weights summed. Customers with rounded
    day counts repeat a lot, so 1M rows become a few hundred thousand or fewer."""
    order = np.lexsort((T, t_x, x))
    x, t_x, T, w = x[order], t_x[order], T[order], w[order]
    new = np.ones(len(x), dtype=bool)
    new[1:] = (np.diff(x) != 0) | (np.diff(t_x) != 0) | (np.diff(T) != 0)
    starts = np.flatnonzero(new)
    return x[starts], t_x[starts], T[starts], np.add.reduceat(w, starts)


class _Objective:
    """Mean negative log-posterior over log-parameters, with its analytic gradient.

    The terms in x alone (gammaln, betaln) are computed once per distinct x; only the
    logaddexp of the two ways to explain a history runs over every distinct row.
    """

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> None:
        self.total = float(w.sum())
        self.ux, inverse = np.unique(x, return_inverse=True)
        self.wx = np.bincount(inverse, weights=w)
        # No repeat purchase (x = 0): only the "still alive" route, and t_x does not
        # enter, so these rows collapse to one per T.
        self.quiet_T, inverse = np.unique(T[x == 0], return_inverse=True)
        self.quiet_w = np.bincount(inverse, weights=w[x == 0])
        rep = x > 0
        self.x, self.t_x, self.T, self.w = x[rep], t_x[rep], T[rep], w[rep]
        self.centre = np.log(
            [DEFAULT_PARAMS.r, DEFAULT_PARAMS.alpha, DEFAULT_PARAMS.a, DEFAULT_PARAMS.b]
        )

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        ux, wx = self.ux, self.wx
        # A1 + A2 of the paper, once per distinct x.
        ll = _dot(
            wx,
            special.gammaln(r + ux)
            - special.gammaln(r)
            + r * math.log(alpha)
            + special.betaln(a, b + ux)
            - special.betaln(a, b),
        )
        g = np.empty(4)
        g[0] = _dot(wx, special.digamma(r + ux) - special.digamma(r) + math.log(alpha))
        g[1] = wx.sum() * r / alpha
        dab = special.digamma(a + b) - special.digamma(a + b + ux)
        g[2] = _dot(wx, dab)
        g[3] = _dot(wx, dab + special.digamma(b + ux) - special.digamma(b))

        # x = 0: (alpha/(alpha+T))^r, its alpha^r already in A1.
        log_aT = np.log(alpha + self.quiet_T)
        ll -= r * _dot(self.quiet_w, log_aT)
        g[0] -= _dot(self.quiet_w, log_aT)
        g[1] -= r * _dot(self.quiet_w, 1.0 / (alpha + self.quiet_T))

        # x > 0: still alive at T, or dropped out right after the purchase at t_x.
        x, t_x, T, w = self.x, self.t_x, self.T, self.w
        log_aT = np.log(alpha + T)
        log_at = np.log(alpha + t_x)
        log_bx = np.log(b + x - 1.0)
        a3 = -(r + x) * log_aT
        d = math.log(a) - log_bx - (r + x) * (log_at - log_aT)  # A4 - A3
        ll += _dot(w, a3 + np.logaddexp(0.0, d))
        s4 = w * special.expit(d)  # posterior weight of the dropout route
        s3 = w - s4
        g[0] -= _dot(s3, log_aT) + _dot(s4, log_at)
        g[1] -= _dot(s3, (r + x) / (alpha + T)) + _dot(s4, (r + x) / (alpha + t_x))
        g[2] += s4.sum() / a
        g[3] -= _dot(s4, 1.0 / (b + x - 1.0))

        g *= np.array([r, alpha, a, b])  # chain rule onto log-parameters
        dev = (theta - self.centre) / PRIOR_SD
        f = (-ll + 0.5 * _dot(dev, dev)) / self.total
        grad = (-g + dev / PRIOR_SD) / self.total
        return float(f), grad


def bgnbd_fit(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, weights: ArrayLike | None = None
) -> BGNBDParams:
    """Maximum a posteriori BG/NBD parameters (a weak prior, see ``PRIOR_SD``).

    Rows that are not finite, negative, have t_x > T or weight <= 0 are ignored. Never
    raises on small or degenerate data: no usable rows, or a non-finite result, give
    DEFAULT_PARAMS with ``converged=False``; with no repeat buyer at all the fit runs
    (r and alpha still learn from the waiting times) but ``converged`` is False
    because a and b are then the prior's; an optimiser that stops short returns its
    last point, also with ``converged=False``. ``n`` is the (weighted) number of
    customers used.
    """
    x, t_x, T = _arrays(x, t_x, T)
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    w = (
        np.ones_like(x)
        if weights is None
        else np.broadcast_to(_arrays(weights)[0], x.shape).ravel()
    )
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & np.isfinite(w)
        ok &= (x >= 0) & (t_x >= 0) & (t_x <= T) & (w > 0)
    x, t_x, T, w = x[ok], t_x[ok], T[ok], w[ok]
    if not len(x):
        return DEFAULT_PARAMS
    t_x = np.where(x > 0, t_x, 0.0)  # recency means nothing without a repeat purchase
    objective = _Objective(*_compress(x, t_x, T, w))
    n = round(objective.total)

    start = objective.centre.copy()
    # Start alpha where r/alpha matches the observed repeat rate, so the optimiser begins
    # near the right purchase rate for this store.
    rate = _dot(w, x) / max(_dot(w, T), 1.0)
    if rate > 0:
        start[1] = np.clip(math.log(DEFAULT_PARAMS.r / rate), LOWER[1], UPPER[1])
    try:
        # One BLAS thread: L-BFGS-B's small dense solves otherwise wake OpenBLAS's pool,
        # whose threads spin; on a busy two-core worker that made a fit ten to fifty
        # times slower.
        with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
            result = optimize.minimize(
                objective,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=list(zip(LOWER, UPPER, strict=True)),
                options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8},
            )
    except (ValueError, FloatingPointError, ArithmeticError):
        return BGNBDParams(**{**DEFAULT_PARAMS.as_dict(), "n": n})
    r, alpha, a, b = np.exp(result.x)
    if not (np.all(np.isfinite(result.x)) and np.isfinite(result.fun)):
        return BGNBDParams(**{**DEFAULT_PARAMS.as_dict(), "n": n})
    converged = bool(result.success) and bool(np.any(x > 0))
    return BGNBDParams(
        r=float(r), alpha=float(alpha), a=float(a), b=float(b), converged=converged, n=n
    )


def _log_odds_dead(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """log P(dead)/P(alive) given the history; -inf where x = 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    rep = x > 0
    xs = np.where(rep, x, 1.0)
    with np.errstate(divide="ignore"):
        odds = (
            math.log(a)
            - np.log(b + xs - 1.0)
            + (r + xs) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
    return np.where(rep, odds, -np.inf)


def bgnbd_p_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(still alive at T | x, t_x, T); exactly 1 for a customer with no repeat purchase."""
    x, t_x, T = _arrays(x, t_x, T)
    return special.expit(-_log_odds_dead(params, x, t_x, T))


def _log_quiet_if_alive(
    params: BGNBDParams, x: np.ndarray, T: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """log P(no purchase in (T, T+t] | alive at T): the rate's posterior is
    Gamma(r+x, alpha+T), so this is ((alpha+T)/(alpha+T+t))^(r+x)."""
    return -(params.r + x) * np.log1p(t / (params.alpha + T))


def bgnbd_p_none(
    params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, t: ArrayLike
) -> np.ndarray:
    """P(no purchase in (T, T+t] | history). A customer only drops out right after a
    purchase, so a dead one buys nothing and a live one is quiet with the Gamma-Poisson
    probability: p_none = 1 - p_alive * (1 - ((alpha+T)/(alpha+T+t))^(r+x))."""
    x, t_x, T, t = _arrays(x, t_x, T, t)
    p_alive = special.expit(-_log_odds_dead(params, x, t_x, T))
    return 1.0 - p_alive * -np.expm1(_log_quiet_if_alive(params, x, T, t))


@functools.lru_cache(maxsize=256)
def _beta_rule(nodes: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule for the Beta(a, b) density on [0, 1] (Golub-Welsch on the Jacobi
    recurrence). scipy's ``roots_jacobi`` overflows its normalisation once b passes a
    few hundred, and a long-lived customer has b + x that large."""
    al, be = b - 1.0, a - 1.0  # Jacobi weight (1-y)^al (1+y)^be, y = 2p - 1
    k = np.arange(1, nodes, dtype=float)
    s = 2.0 * k + al + be
    diag = np.empty(nodes)
    diag[0] = (be - al) / (al + be + 2.0)
    diag[1:] = (be * be - al * al) / (s * (s + 2.0))
    off = np.empty(nodes - 1)
    # k = 1 written with (1 + al + be) cancelled, which is zero when a + b = 1.
    off[0] = 4.0 * (1.0 + al) * (1.0 + be) / ((2.0 + al + be) ** 2 * (3.0 + al + be))
    off[1:] = 4.0 * k[1:] * (k[1:] + al) * (k[1:] + be) * (k[1:] + al + be)
    off[1:] /= s[1:] ** 2 * (s[1:] + 1.0) * (s[1:] - 1.0)
    y, vectors = linalg.eigh_tridiagonal(diag, np.sqrt(off))
    return (1.0 + y) / 2.0, vectors[0] ** 2


def _expected_if_alive_quadrature(
    params: BGNBDParams, x: np.ndarray, T: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T] as E_p[(1 - (1 + p u)^-(r+x)) / p],
    u = t/(alpha+T), with p ~ Beta(a, b+x), the dropout probability's posterior after
    x survived purchases. Slower than the closed form but free of cancellation. Near
    p = 0 the integrand falls like exp(-(r+x) p u), which a polynomial of degree about
    sqrt((r+x) u) resolves, so the rule has that many nodes, in powers of two from 64
    to 1024 (past the cap, a horizon of thousands of purchase cycles, the error grows
    towards 1e-3)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    u = t / (alpha + T)
    want = 32.0 + 3.0 * np.sqrt((r + x + 1.0) * u)
    nodes = 2 ** np.clip(np.ceil(np.log2(want)), 6, 10).astype(int)
    out = np.empty(x.shape)
    order = np.lexsort((nodes, x))
    new = np.ones(len(order), dtype=bool)
    new[1:] = (np.diff(x[order]) != 0) | (np.diff(nodes[order]) != 0)
    for group in np.split(order, np.flatnonzero(new)[1:]):
        value, count = x[group[0]], nodes[group[0]]
        p, w = _beta_rule(int(count), a, b + value)
        # Chunks keep the rows-by-nodes matrix near 16 MB.
        for rows in np.array_split(group, -(-len(group) * count // 2**21)):
            pu = p[None, :] * u[rows][:, None]
            out[rows] = np.sum(-np.expm1(-(r + value) * np.log1p(pu)) / p * w, axis=1)
    return out


def bgnbd_expected(
    params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, t: ArrayLike
) -> np.ndarray:
    """Conditional expected number of purchases in (T, T+t] (FHL 2005, eq. 10).

    Written after Euler's transformation of the paper's 2F1, which is the same number
    but keeps the hypergeometric's first two arguments independent of x and its
    series convergent at z -> 1:

        E = p_alive * (a+b+x-1)/(a-1)
                    * [1 - (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)],  z = t/(alpha+T+t)

    Rows where that is not finite, leaves [0, (r+x) t/(alpha+T)] (the bounds of the
    expectation: the rate's posterior mean times t is the most a live customer can
    buy), or loses more than 1e-9 to cancellation (a near 1, tiny t) are recomputed by
    quadrature (``_expected_if_alive_quadrature``). Checked against adaptive
    quadrature, the closed form rows that pass these tests agree to about 1e-8.
    """
    x, t_x, T, t = _arrays(x, t_x, T, t)
    shape = x.shape
    x, t_x, T, t = x.ravel(), t_x.ravel(), T.ravel(), t.ravel()
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    p_alive = special.expit(-_log_odds_dead(params, x, t_x, T))
    ceiling = (r + x) * (t / (alpha + T))
    with np.errstate(all="ignore"):
        z = t / (alpha + T + t)
        c = a + b + x - 1.0
        tail = np.exp((a - 1.0) * np.log1p(-z)) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        bracket = 1.0 - tail
        if_alive = c / (a - 1.0) * bracket
        # Relative rounding error of 1 - tail: about eps * max(1, |tail|) / |bracket|.
        lost = 2.2e-16 * np.maximum(1.0, np.abs(tail)) / np.abs(bracket)
        bad = ~((if_alive >= 0) & (if_alive <= ceiling * (1 + 1e-9)) & (lost < 1e-9))
    bad &= t > 0
    if np.any(bad):
        if_alive[bad] = _expected_if_alive_quadrature(params, x[bad], T[bad], t[bad])
    if_alive = np.clip(np.where(t > 0, if_alive, 0.0), 0.0, ceiling)
    return (p_alive * if_alive).reshape(shape)


def bgnbd_simulate(
    params: BGNBDParams, T: ArrayLike, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) for customers each observed for T days, drawn from the model:
    lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b), Poisson purchases while alive,
    dropout with probability p after each repeat purchase."""
    T = np.array(T, dtype=float).ravel()
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    p = rng.beta(params.a, params.b, size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.flatnonzero(lam > 0)  # a zero rate (underflow for tiny r) never buys
    while len(active):
        with np.errstate(over="ignore"):  # a subnormal rate waits forever: inf, fine
            now[active] += rng.standard_exponential(len(active)) / lam[active]
        bought = active[now[active] <= T[active]]
        x[bought] += 1.0
        t_x[bought] = now[bought]
        active = bought[rng.random(len(bought)) >= p[bought]]
    return x, t_x, T


def summarise(
    customer: ArrayLike, day: ArrayLike, *, as_of: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customers, x, t_x, T) from one row per purchase: ``customer`` any sortable ids,
    ``day`` whole days (several purchases on one day count once). Purchases after
    ``as_of`` are left out, and so is a customer with none before it."""
    customer = np.asarray(customer)
    day = np.asarray(day, dtype=float)
    keep = day <= as_of
    customer, day = customer[keep], day[keep]
    ids, code = np.unique(customer, return_inverse=True)
    pairs = np.unique(np.stack([code.astype(float), day], axis=1), axis=0)
    code, day = pairs[:, 0].astype(np.intp), pairs[:, 1]
    # The pairs come sorted by customer, then day: each customer's run starts at its
    # first purchase day and ends at its last.
    count = np.bincount(code, minlength=len(ids))
    ends = np.cumsum(count)
    first, last = day[ends - count], day[ends - 1]
    return ids, count - 1.0, last - first, as_of - first
