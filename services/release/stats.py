"""The guardian's statistics: a confidence sequence for the difference between the plan's treatment and its control,
valid however often it is looked at, and a sequential sample ratio mismatch test. Pure (NumPy, SciPy), no I/O.

**The metric test.** Each user exposed in a step is one unit: their value is what they reported in that step (events
for ``count``; 0 or 1 for ``proportion``; the mean of their values for ``mean``). The difference of the two arms' means
is ``d``, with estimated variance ``V = s_t^2 / n_t + s_c^2 / n_c``; ``t = n_t + n_c`` users; ``Z = (d - x) / sqrt(V)``
measures ``d`` against a value ``x`` of the true difference.

The guardian uses the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis and Walsh,
*Always valid inference: continuous monitoring of A/B tests*, Operations Research 70(3), 2022, in the form of an
asymptotic confidence sequence (Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, *Time-uniform central limit theory
and asymptotic confidence sequences*, Annals of Statistics 52(6), 2024, Theorem 2.2: the mixture over effects of the
Gaussian likelihood ratio, with the variance estimated from the data). Since the guardian only acts on harm, the
mixture is one-sided (a half-normal over effects in one direction, Howard, Ramdas, McAuliffe and Sekhon,
*Time-uniform, nonparametric, nonasymptotic confidence sequences*, Annals of Statistics 49(2), 2021, section 3.5):

    M(Z) = 2 / sqrt(t rho^2 + 1) * exp( t rho^2 Z^2 / (2 (t rho^2 + 1)) ) * Phi( Z sqrt(t rho^2 / (t rho^2 + 1)) )

is (asymptotically) a nonnegative supermartingale when ``x`` is the true difference, so by Ville's inequality it ever
reaches ``1 / alpha`` with probability at most ``alpha``, however often it is looked at. The bound ``lower = d - b
sqrt(V)``, with ``b`` the ``Z`` at which ``M = 1 / alpha`` (found with SciPy's ``brentq``; ``Phi`` is SciPy's
``log_ndtr``), is below the true difference at every moment at once with probability ``1 - alpha``: the guardian may
look every second and stop at the first look that shows harm, and peeking does not raise its error rate as it would
with a fixed-sample interval. ``upper`` is the same on the other side. ``rho`` makes the boundary tightest at
``t_star`` users (Waudby-Smith et al.'s ``rho = sqrt((-2 log alpha + log(-2 log alpha + 1)) / t_star)``).

A guardrail "may not rise by more than m" is breached when ``lower > m``; one that may not fall, when
``upper < -m``. Relative limits use the control's current mean (``m = r * |mean_c|``).

**The sample ratio test.** Each new user of a step falls in an arm with the probabilities the rollout's weights
give. A mismatch (users missing from one arm: an SDK that crashes on the new variation, a cache in front of it)
makes every metric comparison wrong, so it rolls back too. The test is the Dirichlet-multinomial Bayes factor of
Lindon and Malek, *Anytime-valid inference for multinomial count data*, NeurIPS 2022: with a Dirichlet prior
``a = c p0`` on the arm probabilities,

    BF = [ B(a + x) / B(a) ] / prod p0_i^x_i,        B(a) = prod Gamma(a_i) / Gamma(sum a_i)

is a nonnegative martingale under the expected split, so by Ville's inequality it ever reaches ``1 / alpha`` with
probability at most ``alpha``: a mismatch is declared then. ``log Gamma`` is SciPy's ``gammaln``.

**The error rate of a plan.** A plan's ``error_rate`` ``alpha`` is the chance of rolling back when nothing is wrong,
over the whole plan. Each check (each tracked guardrail and the sample ratio test, in each step that has a control)
gets a share ``alpha_i`` of it, fixed when the plan is made, with ``sum alpha_i = alpha``: since each check alone
rolls back a plan with nothing wrong with probability at most its ``alpha_i`` however often it is looked at (above),
any of them does with probability at most ``sum alpha_i = alpha`` (Boole's inequality: the weighted Bonferroni
procedure, Rosenthal and Rubin, *Ensemble-adjusted p values*, Psychological Bulletin 94(3), 1983). Any split decided
in advance is valid; the split decides where the plan's error rate buys speed (as an alpha-spending function decided
in advance does over the looks of a trial, Lan and DeMets, *Discrete sequential boundaries for clinical trials*,
Biometrika 70(3), 1983; here over the steps, each of which is monitored continuously).

``by_step`` (``split_by_step``, every plan made since 2026-12-06) spends it where evidence comes slowest. At a step
serving the new variation to a share ``w`` of the users, ``V`` after ``t`` users is about ``sigma^2 / (t w (1 - w))``,
and the boundary grows with ``log(1 / alpha_k)`` (``b^2`` is about ``2 log(1 / alpha_k)`` plus terms in ``t``): the
users a step needs to find a harm ``delta`` are about ``(2 log(1 / alpha_k) + c) sigma^2 / (w (1 - w) delta^2)``.
The split that makes the sum of these over the steps smallest for a given ``alpha`` (Lagrange:
``2 / (alpha_k w_k (1 - w_k))`` equal for every step) is ``alpha_k`` in proportion to ``1 / (w_k (1 - w_k))``: a 5%
step, where the new variation's users arrive slowest, gets most of it (plan 5%, 25%, 50%: 69%, 18%, 13%). Within a
step the sample ratio test gets a fifth and the tracked guardrails share the rest equally (the whole step if there
is none; PromQL guardrails are thresholds and take none): the sample ratio test learns from every user of both arms,
so a fifth instead of a half of the step's share delays it by about ``log(5 / 2) / KL`` users (``KL`` the divergence
of the observed split from the expected one per user: a few thousand users when a tenth of a 5% arm's users go
missing), while the guardrails learn only from the treatment's users. For the plan above with one guardrail, the
first step's sample ratio test gets 0.69% and its guardrail 2.77% (the equal split: 0.83% each).

``equal`` (``split_equal``, plans made before; their events have no ``split``): each check, PromQL guardrails
included, of each watched step an equal share.

**Where each step's boundary is tightest** (``rho``) is also fixed with the plan: ``T_STAR`` users for plans split
``equal``; for plans split ``by_step``, ``t_star = T_STAR_5 * 0.05 * 0.95 / (w (1 - w))`` at a step serving ``w``
(8,000 users at 5%, 2,027 at 25%, 1,520 at 50%). The mixture is over effects in the metric's unit, the same at every
step; per user, a step serving ``w`` learns in proportion to ``w (1 - w)`` (``V`` above), so the same effects are in
reach after proportionally fewer users. 8,000 at a 5% step is chosen for the bench's application (1,000 evaluations
a second across 10,000 users, errors tripled: its rollbacks counted 2,100-9,600 users, 18 of 20 between 5,000 and
9,000); the boundary is flat around ``t_star`` (at 2.77%: 3.00 standard errors at 6,000 users with ``t_star`` 8,000,
3.08 with 2,000) and grows only with the log of the users past it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import gammaln, log_ndtr

#: Users at which the boundary is tightest when nothing else is said (experiment results, plans split ``equal``).
T_STAR = 2_000
#: Plans split ``by_step``: users at which a 5% step's boundary is tightest; a step serving ``w`` is tightest at
#: ``T_STAR_5 * 0.05 * 0.95 / (w (1 - w))`` users (see the module's text).
T_STAR_5 = 8_000
#: The sample ratio test's prior concentration (``a = c p0``).
SRM_CONCENTRATION = 100.0


@dataclass(frozen=True)
class Arm:
    """One side's per-user values: how many users, their mean and their sample variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Arm:
        data = np.asarray(values, dtype=float)
        n = int(data.size)
        if n == 0:
            return cls(0, 0.0, 0.0)
        return cls(n, float(data.mean()), float(data.var(ddof=1)) if n > 1 else 0.0)


@dataclass(frozen=True)
class Interval:
    effect: float
    lower: float
    upper: float


def rho_for(t_star: float, alpha: float) -> float:
    """The mixture parameter that makes the boundary tightest at ``t_star`` units (Waudby-Smith et al.)."""
    a = -2.0 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1.0)) / t_star)


def boundary(t: float, alpha: float, t_star: float = T_STAR) -> float:
    """How many standard errors the estimate must be past a value to exclude it, one side, at ``t`` units: the
    ``z`` at which the one-sided normal mixture (see the module's text) reaches ``1 / alpha``."""
    rho2 = rho_for(t_star, alpha) ** 2
    trho2 = t * rho2
    shrink = trho2 / (trho2 + 1.0)
    target = math.log(1.0 / alpha) - math.log(2.0) + 0.5 * math.log(trho2 + 1.0)

    def excess(z: float) -> float:
        return 0.5 * shrink * z * z + float(log_ndtr(z * math.sqrt(shrink))) - target

    high = 1.0
    while excess(high) < 0:
        high *= 2.0
    return float(brentq(excess, 0.0, high, xtol=1e-9))


def confidence_sequence(treatment: Arm, control: Arm, alpha: float, t_star: float = T_STAR) -> Interval:
    """The always-valid bounds on ``mean_t - mean_c`` at this moment, each side at level ``alpha`` (see the
    module's text): the true difference is below ``lower`` (above ``upper``) at any moment with chance ``alpha``."""
    effect = treatment.mean - control.mean
    if treatment.n < 2 or control.n < 2:
        return Interval(effect, -math.inf, math.inf)
    # A variance of exactly 0 on both sides (every user the same) leaves no uncertainty to measure: floor it at
    # what one user differing by 1 would give, so that a handful of identical users never decides alone.
    var_t = max(treatment.variance, 1.0 / treatment.n**2)
    var_c = max(control.variance, 1.0 / control.n**2)
    half = boundary(treatment.n + control.n, alpha, t_star) * math.sqrt(var_t / treatment.n + var_c / control.n)
    return Interval(effect, effect - half, effect + half)


def srm_log_bayes_factor(
    counts: Sequence[int], expected: Sequence[float], concentration: float = SRM_CONCENTRATION
) -> float:
    """log of the Dirichlet-multinomial Bayes factor against the ``expected`` shares (see the module's text)."""
    x = np.asarray(counts, dtype=float)
    p0 = np.asarray(expected, dtype=float)
    p0 = p0 / p0.sum()
    a = concentration * p0

    def log_beta(v: np.ndarray) -> float:
        return float(gammaln(v).sum() - gammaln(v.sum()))

    positive = p0 > 0
    if np.any(x[~positive] > 0):
        return math.inf  # users in an arm that should be empty
    x, p0, a = x[positive], p0[positive], a[positive]
    return log_beta(a + x) - log_beta(a) - float((x * np.log(p0)).sum())


def srm_mismatch(counts: Sequence[int], expected: Sequence[float], alpha: float) -> bool:
    """Whether the users' split is, beyond the ``alpha`` chance of a false alarm, not the ``expected`` one."""
    return srm_log_bayes_factor(counts, expected) >= math.log(1.0 / alpha)


@dataclass(frozen=True)
class Judgement:
    """One guardrail at one moment."""

    treatment: Arm
    control: Arm
    interval: Interval
    #: The change the guardrail accepts, absolute (in the metric's unit), in its bad direction.
    limit: float
    breached: bool
    #: Enough users on both sides to judge.
    judged: bool


def judge(
    treatment: Sequence[float] | np.ndarray,
    control: Sequence[float] | np.ndarray,
    *,
    bad: str,
    max_change: float,
    relative: bool,
    alpha: float,
    min_users: int,
    t_star: float = T_STAR,
) -> Judgement:
    """Judge one guardrail from the per-user values of both arms."""
    arm_t, arm_c = Arm.of(treatment), Arm.of(control)
    interval = confidence_sequence(arm_t, arm_c, alpha, t_star)
    limit = max_change * abs(arm_c.mean) if relative else max_change
    judged = arm_t.n >= min_users and arm_c.n >= min_users
    past = interval.lower > limit if bad == "increase" else interval.upper < -limit
    breached = judged and past
    return Judgement(arm_t, arm_c, interval, limit, breached, judged)


def share_of(error_rate: float, checks: int) -> float:
    """Each check's share of a plan's error rate when all get the same (Bonferroni)."""
    return error_rate / max(1, checks)


#: The sample ratio test's part of a step's share (split ``by_step``, see the module's text).
SRM_PART = 0.2


@dataclass(frozen=True)
class Shares:
    """One step's error rates: each tracked guardrail's and the sample ratio test's (0 for a step with no control),
    and the users at which its guardrails' boundary is tightest."""

    guardrail: float
    sample_ratio: float
    t_star: float = T_STAR


def t_star_for(weight: float) -> float:
    """Where a step serving ``weight`` is tightest (plans split ``by_step``): the same information as a 5% step at
    ``T_STAR_5`` users (see the module's text)."""
    if not 0.0 < weight < 1.0:
        return float(T_STAR_5)
    return T_STAR_5 * 0.05 * 0.95 / (weight * (1.0 - weight))


def split_by_step(error_rate: float, weights: Sequence[float], tracked: int) -> list[Shares]:
    """``error_rate`` shared among steps whose treatment shares are ``weights`` (0 < w <= 1; a step at 1 has no control
    and gets nothing) in proportion to ``1 / (w (1 - w))``, then within each step a fifth to the sample ratio test
    and the rest equally among ``tracked`` guardrails (see the module's text)."""
    slowness = [1.0 / (w * (1.0 - w)) if 0.0 < w < 1.0 else 0.0 for w in weights]
    total = sum(slowness)
    out = []
    for w, s in zip(weights, slowness, strict=True):
        step = error_rate * s / total if total else 0.0
        if tracked:
            out.append(Shares(step * (1.0 - SRM_PART) / tracked, step * SRM_PART, t_star_for(w)))
        else:
            out.append(Shares(0.0, step, t_star_for(w)))
    return out


def split_equal(error_rate: float, weights: Sequence[float], guardrails: int) -> list[Shares]:
    """The split of plans made before ``by_step``: each of ``guardrails`` (PromQL included) and the sample ratio
    test, in each step with a control, an equal share."""
    watched = sum(1 for w in weights if w < 1.0)
    each = share_of(error_rate, max(1, watched) * (guardrails + 1))
    return [Shares(each, each) if w < 1.0 else Shares(0.0, 0.0) for w in weights]
