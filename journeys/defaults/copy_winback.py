"""Copy for the next best actions the churn scorer picks: a win-back with an
incentive (an offer, a reminder on the customer's preferred channel, a last
chance) and a content nudge (one helpful note, no offer).

Both start from the scorer's touchpoints (``next_action.winback``,
``next_action.nudge``), which carry no order or product: the copy uses only
the customer, the store and the links. The code COMEBACK15 must exist in the
storefront; marketers change it with the rest of the copy.
"""

from __future__ import annotations

from journeys.defaults.base import MARKETING, email, in_app, sms

WINBACK = (
    email(
        "winback-1",
        "Win-back 1: we miss you, 15% off",
        MARKETING,
        '{{ customer.first_name|default:"Hello" }}, we miss you: 15% off your next order',
        """\
It's been a while since your last order with {{ store.name }}, and we'd love to see \
you back.

To make it worth your while: take 15% off your next order with the code COMEBACK15. \
It's valid for the next 14 days, on everything in the shop.

A lot may have changed since you last looked: new products, restocked favourites and \
a few things our regulars can't stop talking about.

And if something put you off last time, reply and tell us. A real person reads every \
email, and we'd like the chance to put it right.""",
    ),
    email(
        "winback-reminder-email",
        "Win-back 2: your 15% is waiting",
        MARKETING,
        "Your 15% off is still waiting",
        """\
A quick reminder: your code COMEBACK15 still takes 15% off your next order at \
{{ store.name }}.

It's valid for another 10 days, on everything in the shop. A good moment to restock \
a favourite or try something new.""",
    ),
    sms(
        "winback-reminder-sms",
        "Win-back 2: your 15% is waiting",
        MARKETING,
        "your 15% off is still waiting. Use code COMEBACK15 on your next order, valid for "
        "10 more days.",
    ),
    in_app(
        "winback-reminder-in-app",
        "Win-back 2: your 15% is waiting",
        MARKETING,
        "Your 15% off is waiting",
        "Use the code COMEBACK15 for 15% off your next order. Valid for 10 more days.",
    ),
    email(
        "winback-last",
        "Win-back 3: last chance for 15% off",
        MARKETING,
        "Last chance: your 15% off ends in 4 days",
        """\
This is the last reminder from us about your code COMEBACK15: it takes 15% off your \
next order and ends in 4 days.

After that we'll stop sending offers like this one for a while. If you'd rather hear \
from us less (or more), you can choose what we send you with the link below.

Whatever you decide, thank you for having shopped with {{ store.name }}.""",
    ),
)

NUDGE = (
    email(
        "nudge-email",
        "Content nudge: tips from our regulars",
        MARKETING,
        "A few tips from our regulars",
        """\
No offer, no sales pitch: just a few things our regular customers find useful, in \
case they help you too.

- Store things somewhere cool and dry, lid closed: they last noticeably longer.
- Note the day you open something. After one round you'll know when to restock, \
and we can remind you at the right time.
- Stuck, or not sure something is right for you? Reply to this email and ask. We \
answer on working days, usually within a few hours.

Tell us what you'd like to hear about from {{ store.name }}: reply with a line and \
we'll send more of what's useful to you, and less of what isn't.""",
    ),
    sms(
        "nudge-sms",
        "Content nudge: tips from our regulars",
        MARKETING,
        "a tip from our regulars: note the day you open something, then you'll know when "
        "to restock. Questions? Just reply.",
    ),
    in_app(
        "nudge-in-app",
        "Content nudge: tips from our regulars",
        MARKETING,
        "Tips from our regulars",
        "Store things cool and dry, and note the day you open them: you'll know when to "
        "restock. Questions? Message us any time.",
    ),
)
