"""Copy for the journeys after a first order: the welcome series (day 0, 3, 7,
14) and the 90-day plan (onboarding, usage, loyalty), whose waves ask two or
three short questions on the customer's preferred channel."""

from __future__ import annotations

from journeys.defaults.base import MARKETING, email, in_app, sms

WELCOME = (
    email(
        "welcome-0",
        "Welcome day 0: thanks and what happens next",
        MARKETING,
        'Thanks for your order, {{ customer.first_name|default:"there" }}!',
        """\
Thank you for shopping with {{ store.name }}. We're really glad you found us.
{% if order.items %}
Here's what you ordered{% if order.number %} (order {{ order.number }}){% endif %}:
{% for item in order.items %}  {{ item.quantity }} x {{ item.name }}
{% endfor %}{% endif %}
What happens next:
- We pack your order within one working day and let you know when it's on its way.
- Most parcels arrive in 2 to 4 working days.{% if order.status_url %}
- You can follow yours at any time here: {{ order.status_url }}{% endif %}

Over the next two weeks we'll send you a few short notes: how to get started, how to look \
after what you bought, and what to do if something isn't right. Nothing more.
{% if product.family %}
While you wait: if you like our {{ product.family }}, the rest of the range is worth a look. \
Many customers pair it with a refill or a second favourite.
{% endif %}
Any questions at all? Just reply. A real person reads every email.""",
    ),
    email(
        "welcome-3",
        "Welcome day 3: tips and care",
        MARKETING,
        "Getting the most out of {{ product.name|default:'your order' }}",
        """\
By now your order should be with you, or very close. A few tips to get the most out of it:

1. Start simple. Use it as intended for the first week before you experiment.
2. Store it well: somewhere cool and dry, out of direct sunlight, lid closed.
3. Note the day you open it. After one round you'll know exactly when to reorder, \
and we can remind you at the right time.

Looking after it:
- Check the label for care and storage instructions; they really do make a difference.
- Most of our products keep best for a few weeks once opened.

Not sure about something? Reply to this email with your question and we'll help.""",
    ),
    email(
        "welcome-7",
        "Welcome day 7: returns, delivery and help",
        MARKETING,
        "Good to know: returns, delivery and getting help",
        """\
A week in, here's the practical stuff, so you never have to go looking for it.

Returns: changed your mind or something isn't right? You can send unopened items back \
within 30 days of delivery. Reply to this email and we'll sort out the rest.
{% if order.status_url %}
Delivery: tracking and updates for order {{ order.number }} are all on one page: \
{{ order.status_url }}
{% endif %}
Help: the quickest way to reach us is to reply to any of our emails. We answer on \
working days, usually within a few hours.

If anything arrived damaged or late, tell us. We'd much rather fix it than have you \
put up with it.""",
    ),
    email(
        "welcome-14",
        "Welcome day 14: your points and an offer",
        MARKETING,
        "A thank-you from {{ store.name }}",
        """\
Two weeks ago you placed your first order with us. Thank you!

Your first order has earned you loyalty points: every order from now on adds more, \
and they come off future orders automatically.

And because you're new: 10% off your next order with the code WELCOME10, valid for \
the next 30 days.{% if product.name %} Running low on {{ product.name }}? That's a good \
place to use it.{% elif product.family %} It works on our whole {{ product.family }} range \
and everything else we sell.{% endif %}

This is the last of our welcome notes. From here on we'll only write when we have \
something genuinely useful: a reminder before you run out, or an offer we think you'll like.""",
    ),
)

# The 90-day plan: each wave on the customer's preferred channel.
PLAN = (
    email(
        "plan-1-email",
        "90-day plan 1: onboarding questions",
        MARKETING,
        "Two quick questions about your first days",
        """\
You've had your order for a couple of days. To make sure what we send you from now on \
is actually useful, could you answer two quick questions? Just reply with a line or two.

1. What are you mainly using it for?
2. Is anything unclear or harder than you expected?

We read every answer, and we'll use yours to send you tips that fit.""",
    ),
    sms(
        "plan-1-sms",
        "90-day plan 1: onboarding questions",
        MARKETING,
        "Hi {{ customer.first_name|default:'there' }}, 2 quick questions: what do you use "
        "your order for, and is anything unclear? Just reply.",
    ),
    in_app(
        "plan-1-in-app",
        "90-day plan 1: onboarding questions",
        MARKETING,
        "How are your first days going?",
        "Two quick questions: what are you mainly using it for, and is anything unclear "
        "or harder than you expected? Tap reply and tell us.",
    ),
    email(
        "plan-2-email",
        "90-day plan 2: usage questions",
        MARKETING,
        "A month in: is it working for you?",
        """\
It's been about a month since your first order. We'd love to know how it's going, \
so we can help you get more out of it. Three short questions, reply to any of them:

1. How often do you use it: daily, weekly, now and then?
2. What would you like it to do better for you?
3. Is there something you hoped we'd sell but couldn't find?

Based on your answers we'll send you a tip or two that match how you actually use it.""",
    ),
    sms(
        "plan-2-sms",
        "90-day plan 2: usage questions",
        MARKETING,
        "A month in! How often do you use your order, and what could work better for you? "
        "Reply and we'll send tips that fit.",
    ),
    in_app(
        "plan-2-in-app",
        "90-day plan 2: usage questions",
        MARKETING,
        "A month in: is it working for you?",
        "How often do you use it? What would you like it to do better? Anything you hoped "
        "we'd sell but couldn't find? Your answers shape the tips we send.",
    ),
    email(
        "plan-3-email",
        "90-day plan 3: loyalty and goals",
        MARKETING,
        "What's next for you, {{ customer.first_name|default:'friend' }}?",
        """\
You've been with us for almost three months. Thank you for sticking around!

Two last questions, so we can plan your next few months with you:

1. What's your goal for the coming months?
2. Would you rather we remind you before you run out, or leave the timing to you?

As a loyal customer, your next order ships free: use the code LOYAL at checkout \
within the next two weeks.""",
    ),
    sms(
        "plan-3-sms",
        "90-day plan 3: loyalty and goals",
        MARKETING,
        "3 months together, thank you! What's your goal for the next months? Reply to tell "
        "us. Free shipping on your next order with code LOYAL.",
    ),
    in_app(
        "plan-3-in-app",
        "90-day plan 3: loyalty and goals",
        MARKETING,
        "Three months with us: thank you!",
        "What's your goal for the coming months? Should we remind you before you run out? "
        "Tell us, and enjoy free shipping on your next order with code LOYAL.",
    ),
)
