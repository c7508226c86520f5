"""Copy for the nudges that bring customers back: reorder, upsell and
replenishment at their product family's windows, and the follow-ups for each
tier (high-value repeat, mid-value repeat, one-time buyers).

Discount codes (THANKYOU15, SAVE10, WELCOME10 and LOYAL in the lifecycle copy)
must exist in the storefront; marketers change them with the rest of the copy.
"""

from __future__ import annotations

from journeys.defaults.base import MARKETING, email, sms

FAMILY = (
    email(
        "reorder-email",
        "Reorder reminder",
        MARKETING,
        "Running low on {{ product.name|default:'your favourites' }}?",
        """\
If you've been using {{ product.name|default:"your last order" }} as much as we think, \
you might be running low about now.

Reorder in good time and you'll never have to go without: it takes a minute, and \
delivery usually takes 2 to 4 working days.

Not running low yet? No worries, ignore this one and we'll stay out of your way.""",
    ),
    sms(
        "reorder-sms",
        "Reorder reminder",
        MARKETING,
        "running low on {{ product.name|default:'your favourites' }}? Reorder now and "
        "it'll be with you in a few days.",
    ),
    email(
        "upsell-email",
        "Upsell: goes well with",
        MARKETING,
        "Something to go with your {{ product.name|default:'last order' }}",
        """\
Now that you've had some time with {{ product.name|default:"your last order" }}, \
here's an idea: customers who love our {{ product.family|default:"products" }} often \
add something from a related range too.

A few of our favourite pairings:
- a refill or travel size of what you already like,
- a companion product that makes the daily routine easier,
- something new to try from a range you haven't explored yet.

Reply to this email and tell us what you use it for. We'll suggest the best match, \
no strings attached.""",
    ),
    email(
        "replenishment-email",
        "Replenishment: time to restock",
        MARKETING,
        "Time to restock {{ product.name|default:'your favourites' }}?",
        """\
Around now, most customers find their {{ product.name|default:"last order" }} is \
nearly used up.

Order today and your restock arrives before you run out: no gaps, no last-minute \
trips to the shop.

Using it up faster or slower than that? Reply and tell us: we'll time our reminders \
to suit you.""",
    ),
    sms(
        "replenishment-sms",
        "Replenishment: time to restock",
        MARKETING,
        "time to restock {{ product.name|default:'your favourites' }}? Order today and it "
        "arrives before you run out.",
    ),
)

SEGMENTS = (
    email(
        "high-value-1",
        "High-value repeat 1: a personal thank-you",
        MARKETING,
        '{{ customer.first_name|default:"You" }}, a thank-you just for you',
        """\
You've come back to {{ store.name }} again, and that means a lot to a shop like ours.

As a thank-you, here's something just for you: 15% off your next order with the code \
THANKYOU15, valid for the next 14 days.

And if there's ever anything we can do better, reply to this email: it comes straight \
to us.""",
    ),
    email(
        "high-value-2",
        "High-value repeat 2: picked for you",
        MARKETING,
        "Picked for you: something new to try",
        """\
You clearly know what you like{% if product.family %}, and our \
{{ product.family }} range is obviously part of it{% endif %}. So here's a suggestion from \
outside your usual basket.

Customers who shop with us as often as you do tend to love discovering a second \
favourite range: the same care and quality, just for another part of the day.

Reply with what you'd like to try next and we'll recommend three products we think \
you'll love. Your THANKYOU15 code works on those too.""",
    ),
    email(
        "mid-value-1",
        "Mid-value repeat 1: our best guides",
        MARKETING,
        "Our best guides, in one email",
        """\
Thanks for shopping with us again! Since you're coming back, we thought you'd like the \
know-how our regular customers find most useful, all in one place:

- How to store things so they last longer.
- How to tell when you'll need a refill, before you run out.
- Small changes that get more out of what you already have.

Have a question the guides don't answer? Reply and ask us.""",
    ),
    email(
        "mid-value-2",
        "Mid-value repeat 2: a limited-time discount",
        MARKETING,
        "10% off, for the next 3 days",
        """\
Because you're a regular: take 10% off your next order with the code SAVE10.

The code is valid for the next 3 days, on everything in the shop. A good moment to \
stock up on your favourites, or try something new.""",
    ),
    email(
        "one-time-1",
        "One-time buyer 1: a practical guide",
        MARKETING,
        "A practical guide to your {{ product.name|default:'order' }}",
        """\
A little while ago you ordered from {{ store.name }}. We hope it's been useful!

Here's a short, practical guide to getting the most out of it:

1. Use it regularly for the best results.
2. Keep it somewhere cool and dry.
3. Note when you started, so you know when you'll need more.

Questions? Just reply: we're happy to help.""",
    ),
    email(
        "one-time-2",
        "One-time buyer 2: a soft nudge",
        MARKETING,
        "Whenever you're ready",
        """\
Just a friendly hello from {{ store.name }}. No pressure: whenever you're ready for \
your next order, we're here.

If your first order wasn't everything you hoped for, we'd really like to know why. \
Reply with a line and we'll do our best to put it right.""",
    ),
)
