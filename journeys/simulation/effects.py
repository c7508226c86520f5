"""A known effect injected into the simulated store, so the experiment path
(assignment, exposure, metrics, statistics) can be checked end to end:
``simulate --experiment-effect NAME=0.10`` makes every customer exposed to a
treatment arm of experiment NAME place repeat orders at 1.10 times the rate
they otherwise would, from their exposure on; the control is left alone.

Each repeat order the store draws for a treated customer brings ``e`` extra
repeat orders on average (the whole part always, the fraction by chance), each
for a treated customer drawn at random: treated customers' expected repeat
orders become ``1 + e`` times the untreated rate. A negative ``e`` drops that
share of treated customers' repeat orders instead. The injector has its own
random stream, so with ``e = 0`` the store's events are exactly those of a run
without it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

from experiments.models import Experiment, ExperimentStatus, Exposure
from retention.errors import InvalidInput
from retention.models import Tenant


@dataclass
class Injected:
    """One experiment's injected relative effect and who is treated so far."""

    experiment: Experiment
    effect: float
    treated: list[dict] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)


def _key(ref: dict) -> str:
    return ref.get("email") or ref.get("phone") or ""


class Effects:
    def __init__(self, tenant: Tenant, effects: dict[str, float], *, seed: int) -> None:
        self.tenant = tenant
        self.rng = random.Random(f"{seed}:experiment-effect")  # noqa: S311 - a simulation
        self.injected = [
            Injected(_experiment(tenant, name), effect) for name, effect in effects.items()
        ]

    def refresh(self, at: datetime) -> None:
        """Who is treated at ``at``: exposed before it, in a non-control arm."""
        for item in self.injected:
            rows = (
                Exposure.objects.for_tenant(self.tenant)
                .filter(experiment=item.experiment, variant__is_control=False, exposed_at__lt=at)
                .order_by("customer_id")
                .values_list("customer__email", "customer__phone")
            )
            item.treated = [{"email": e} if e else {"phone": p} for e, p in rows if e or p]
            item.keys = {_key(ref) for ref in item.treated}

    def adjust(self, who: dict) -> tuple[bool, list[dict]]:
        """For a repeat order drawn for ``who``: keep it?, and the extra repeat
        orders the effect adds (the customers who place them)."""
        keep, extra = True, []
        for item in self.injected:
            if item.treated and _key(who) in item.keys:
                kept, more = inject(self.rng, item.effect, item.treated)
                keep, extra = keep and kept, extra + more
        return keep, extra


def inject(rng: random.Random, effect: float, treated: list) -> tuple[bool, list]:
    """The effect on one repeat order drawn for a treated customer: whether it
    stays, and who among ``treated`` places the extra orders it brings."""
    if effect < 0:
        return rng.random() >= -effect, []
    whole, part = divmod(effect, 1)
    count = int(whole) + (1 if rng.random() < part else 0)
    return True, [rng.choice(treated) for _ in range(count)]


def _experiment(tenant: Tenant, name: str) -> Experiment:
    experiment = Experiment.objects.for_tenant(tenant).filter(name=name).first()
    if experiment is None:
        raise InvalidInput(f"No experiment called {name!r} in {tenant.slug}.")
    if experiment.status != ExperimentStatus.RUNNING:
        raise InvalidInput(
            f"Experiment {name!r} is {experiment.status}: launch it first, so the simulated "
            "customers are exposed."
        )
    return experiment


def parse_effect(text: str) -> tuple[str, float]:
    """``NAME=0.10`` → ("NAME", 0.10); the name may contain ``=``."""
    name, sep, value = text.rpartition("=")
    try:
        effect = float(value)
    except ValueError:
        effect = math.nan
    if not sep or not name.strip() or not math.isfinite(effect) or not -1 < effect <= 10:
        raise InvalidInput(
            f"--experiment-effect takes NAME=EFFECT with EFFECT a relative change above -1 and "
            f"at most 10 (0.10 is +10%), not {text!r}."
        )
    return name.strip(), effect
