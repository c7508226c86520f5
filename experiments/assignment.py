"""Which variant a customer is in: a pure function of (tenant, experiment,
customer) and the arms' weights.

SHA-256 of ``"<tenant>:<experiment>:<customer>"`` read as a 64-bit number and
reduced modulo the total weight picks the arm, so every worker, every re-run
and the report agree without a lookup, and the split follows the weights
(the modulo bias over 2**64 is below 1e-15). The experiment's id is part of
the key: one customer's arms in two experiments are independent.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from itertools import accumulate


def assignment_point(tenant_id: int, experiment_id: int, customer_id: int) -> int:
    digest = hashlib.sha256(f"{tenant_id}:{experiment_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def variant_for(
    tenant_id: int, experiment_id: int, customer_id: int, arms: Sequence[tuple[str, int]]
) -> str:
    """The key of the arm this customer is in; ``arms`` is (key, weight) in a
    fixed order (the experiment's, by key)."""
    if not arms:
        raise ValueError("An experiment needs at least one variant.")
    edges = list(accumulate(weight for _, weight in arms))
    if edges[-1] <= 0 or any(weight <= 0 for _, weight in arms):
        raise ValueError("Variant weights must be positive.")
    point = assignment_point(tenant_id, experiment_id, customer_id) % edges[-1]
    return arms[bisect.bisect_right(edges, point)][0]
