"""A fake SendGrid and Twilio API on 127.0.0.1, for tests and benchmarks.

It answers ``POST /v3/mail/send`` and ``POST /2010-04-01/Accounts/<sid>/Messages.json``
as the real APIs do (auth, the validation worth imitating, status codes,
bodies and headers the SDKs parse), records every call, and fails, delays or
drops calls to chosen recipients on request.

In a test (served from a thread)::

    with FakeProvider() as fake:            # or the ``fake_provider`` fixture
        fake.fail(to="+15550001111", status=400, code=21610)
        ...
        fake.calls_for(message.id)          # -> [Call(...)]

As a process (benchmarks)::

    python -m tests.fake_provider --port 8765      # prints http://127.0.0.1:8765

driven with :class:`RemoteFakeProvider` or by hand: ``GET /_fake/calls``
(totals, and counts per message id), ``GET /_fake/calls?message_id=<id>`` or
``?recent=<n>`` (recorded calls), ``POST /_fake/reset``, ``POST /_fake/rules``
with a rule or a list of them: ``{"action": "fail", "to": "+1555...",
"status": 429, "times": 3, "retry_after": 2}``, ``{"action": "delay", "to": ...,
"seconds": 2}``, ``{"action": "drop", "to": ...}``; ``"to": "*"`` matches
everyone and ``"times": null`` lasts until reset.

Modules: ``server`` (state, Python API, routing), ``apis`` (what each
provider answers), ``wire`` (HTTP/1.1 on asyncio), ``remote`` (the HTTP
control client).
"""

from .remote import RemoteFakeProvider
from .server import ANY, Call, FakeProvider, Rule

__all__ = ["ANY", "Call", "FakeProvider", "RemoteFakeProvider", "Rule"]
