"""Copy for the survey after delivery and what follows an answer: a thank-you
with cross-sell for promoters, tips and a light incentive for neutrals.
(Detractors are called back by support: ``feedback.services.survey_answer``
queues the callback, no journey needed.)

The invitation is marketing mail: in much of Europe a request for feedback
counts as advertising, so it goes only where the customer may get marketing.
"""

from __future__ import annotations

from journeys.defaults.base import MARKETING, email, in_app, sms

SURVEY = (
    email(
        "survey-email",
        "Survey: how did we do?",
        MARKETING,
        "How was your order {{ order.number }}?",
        """\
Your order {{ order.number }} should be with you now. How did we do?

Three quick questions, one screen, under a minute:
{{ links.survey }}

Your answers go straight to the people who pack and ship your orders. If something \
went wrong, say so: you can ask us to call you back and we will.""",
    ),
    sms(
        "survey-sms",
        "Survey: how did we do?",
        MARKETING,
        "how was order {{ order.number }}? Reply 1-5 (5 = great), add a few words if you "
        "like, or 'call me'. Or: {{ links.survey }}",
    ),
    in_app(
        "survey-in-app",
        "Survey: how did we do?",
        MARKETING,
        "How was your order?",
        "Tell us how order {{ order.number }} went: three quick questions. {{ links.survey }}",
    ),
)

AFTER_ANSWER = (
    email(
        "promoter-1",
        "Promoters: thank you, and picked for you",
        MARKETING,
        "Thank you, {{ customer.first_name|default:'friend' }}!",
        """\
Thank you for the great rating. It made our day, and it helps more than you'd think.

If you know someone who would like {{ store.name }} too, forward them this email: \
recommendations from customers like you are how most people find us.

And since you liked your order, have a look at what goes well with it in our shop. \
We pick new things every week.""",
    ),
    email(
        "neutral-1",
        "Neutrals: tips and a little something",
        MARKETING,
        "Getting the most from your order",
        """\
Thank you for your honest answer. We'd like your next order to earn a 5.

A few things our customers find useful:
- Check the care guide on each product page: it makes things last much longer.
- Most questions are answered within one working day: just reply to any of our emails.
- Not quite right? Returns of unused items are free within 30 days.

Reply to this email and tell us what would have made it better: as a thank-you we'll \
send you a little something off your next order.""",
    ),
)
