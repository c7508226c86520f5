"""The simulator behind ``manage.py simulate``: days of store activity run
through the real platform on a moving clock, then what the journeys did.

Each simulated day brings new store activity like ``seed_demo``'s history:
first orders from new customers and repeat orders from known ones, parcels
moving packed → shipped → out for delivery → delivered (some delayed on the
way), carts left behind (some recovered by an order later), and product events
(``onboarding.completed``, ``first_value.reached``). Every event goes through
the storefront ingestion path (``commerce.ingest.apply``: validation, then
``order_upsert``, ``fulfillment_update``, ``cart_upsert``, ``touchpoints``), at
its own time on the project clock. Every simulated hour the clock stops for
what the beat would run: abandoned carts are marked, the tenant's journeys
tick (triggers, exits, due steps) and due messages are handed to the send path;
once a simulated night the segments are recomputed and every customer is
scored for churn (band entries start the win-back and nudge journeys and queue
check-in calls). Some invited customers answer the survey after delivery a few
hours later (``surveys.Respondents``),
so the promoter and neutral journeys and the callback queue see work too.

Celery tasks run in-process while simulating (orders refresh segments and
queued messages are sent at once, on the simulated clock, as in the embedded
default). The same seed on the same starting data gives the same run.
"""

from journeys.simulation.report import journey_report
from journeys.simulation.run import Run, simulate, simulated_before, simulation_start

__all__ = ["Run", "journey_report", "simulate", "simulated_before", "simulation_start"]
