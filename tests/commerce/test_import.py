"""import_orders: the CSV import (generic and Shopify export) into PostgreSQL."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.importer import FORMATS, GENERIC_HEADER, ImportResult, _Merge, orders_import
from commerce.models import (
    Customer,
    CustomerIdentity,
    IdentityKind,
    Order,
    OrderLine,
    Product,
    ProductFamily,
)
from retention.models import Tenant

ROOT = Path(__file__).resolve().parents[2]
BERLIN = timezone(timedelta(hours=1))  # Berlin in winter, the fixtures' timezone


def write_csv(path: Path, rows: list[list], header=GENERIC_HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        if header:
            out.writerow(header)
        out.writerows(rows)
    return path


def run_import(tenant: Tenant, path: Path, *args: str) -> dict[str, str]:
    """Run the command; returns its printed counts by label."""
    out = io.StringIO()
    call_command("import_orders", "--tenant", tenant.slug, str(path), *args, stdout=out)
    return dict(re.findall(r"^([a-z/ ]+):\s+(\S+)$", out.getvalue(), flags=re.M))


def counts(tenant: Tenant) -> dict[str, int]:
    models = (Customer, CustomerIdentity, Order, OrderLine, Product, ProductFamily)
    return {m.__name__: m.objects.for_tenant(tenant).count() for m in models}


def report(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


GOOD_ROWS = [
    # customer_id, email, phone, order_id, ordered_at, sku, product_family, qty, price, total, cur
    ["c1", "Ann@Example.com", "+49 151 12345678", "o1", "2024-03-01T10:00:00+01:00",
     "SKU-1", "Skin Care", "2", "10.00", "25.00", "EUR"],
    ["c1", "ann@example.com", "", "o1", "2024-03-01T10:00:00+01:00",
     "SKU-2", "Skin Care", "1", "5", "25.00", "EUR"],
    ["c2", "", "(415) 555-2671", "o2", "20240302", "SKU-1", "", "3", "10.00", "", ""],
    ["c1", "", "", "o3", "2024-03-05 08:30", "", "Hair", "1", "7.50", "", "usd"],
]  # fmt: skip


def test_good_rows_are_imported_with_exact_counts_and_totals(tenant, tmp_path):
    # Given a file of four lines: two orders of c1 (one with two lines), one of c2
    path = write_csv(tmp_path / "orders.csv", GOOD_ROWS)

    # When it is imported
    printed = run_import(tenant, path)

    # Then everything in it exists once, with the file's values
    assert printed["rows read"] == "4"
    assert printed["rows imported"] == "4"
    assert printed["rows rejected"] == "0"
    assert printed["customers created"] == "2"
    assert printed["orders created"] == "3"
    assert printed["lines created"] == "4"
    assert counts(tenant) == {
        "Customer": 2,
        "CustomerIdentity": 5,  # c1: external, email, phone; c2: external, phone
        "Order": 3,
        "OrderLine": 4,
        "Product": 2,
        "ProductFamily": 2,
    }
    orders = {o.external_id: o for o in Order.objects.for_tenant(tenant)}
    o1, o2, o3 = orders["o1"], orders["o2"], orders["o3"]
    assert (o1.total, o1.subtotal, o1.currency) == (Decimal("25.00"), Decimal("25.00"), "EUR")
    assert (o2.total, o2.subtotal, o2.currency) == (Decimal("30.00"), Decimal("30.00"), "EUR")
    assert (o3.total, o3.currency) == (Decimal("7.50"), "USD")
    assert (o1.source, o1.number, o1.status) == ("storefront", "o1", "paid")
    assert o1.placed_at == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert o1.customer_id == o3.customer_id != o2.customer_id
    ann = o1.customer
    assert (ann.email, ann.phone) == ("ann@example.com", "+4915112345678")
    assert o2.customer.phone == "+14155552671"
    assert set(
        CustomerIdentity.objects.for_tenant(tenant)
        .filter(customer=ann)
        .values_list("kind", "source", "value")
    ) == {
        ("external", "storefront", "c1"),
        ("email", "", "ann@example.com"),
        ("phone", "", "+4915112345678"),
    }
    skin = ProductFamily.objects.for_tenant(tenant).get(slug="skin-care")
    assert skin.name == "Skin Care"
    assert (skin.reorder_days, skin.upsell_days, skin.replenishment_days) == (7, 14, 28)
    sku1 = Product.objects.for_tenant(tenant).get(sku="SKU-1")
    assert (sku1.family, sku1.price) == (skin, Decimal("10.00"))
    lines = OrderLine.objects.for_tenant(tenant)
    # SKU-1 in o2 has no family in its row; the line takes the product's family
    assert {
        (ln.order.external_id, ln.sku, ln.family.slug, ln.quantity, ln.total) for ln in lines
    } == {
        ("o1", "SKU-1", "skin-care", 2, Decimal("20.00")),
        ("o1", "SKU-2", "skin-care", 1, Decimal("5.00")),
        ("o2", "SKU-1", "skin-care", 3, Decimal("30.00")),
        ("o3", "", "hair", 1, Decimal("7.50")),
    }
    assert lines.aggregate(s=Sum("total"))["s"] == Decimal("62.50")


def test_bad_rows_are_reported_with_line_and_reason_while_good_rows_import(tenant, tmp_path):
    # Given good rows mixed with one bad row of each kind
    rows = [
        GOOD_ROWS[0],
        ["c3", "", "", "o4", "yesterday", "S", "", "1", "1.00", "", ""],
        ["c3", "", "", "o5", "2024-02-30", "S", "", "1", "1.00", "", ""],
        ["c3", "", "", "o6", "2024-03-01", "S", "", "two", "1.00", "", ""],
        ["c3", "", "", "o7", "2024-03-01", "S", "", "1", "1,50", "", ""],
        ["c3", "not-an-email", "", "o8", "2024-03-01", "S", "", "1", "1.00", "", ""],
        ["c3", "", "12", "o9", "2024-03-01", "S", "", "1", "1.00", "", ""],
        ["", "", "", "o10", "2024-03-01", "S", "", "1", "1.00", "", ""],
        ["c3", "", "", "", "2024-03-01", "S", "", "1", "1.00", "", ""],
        ["c3", "", "", "o11", "2024-03-01"],
        ["c3", "", "", "o12", "2024-03-01", "S", "", "1", "-1.00", "", ""],
        ["c3", "", "", "o13", "2024-03-01", "S", "", "1", "1.00", "", "euro"],
        GOOD_ROWS[2],
    ]
    path = write_csv(tmp_path / "orders.csv", rows)

    # When it is imported
    printed = run_import(tenant, path)

    # Then the good rows are in and each bad one is reported with its line and reason
    assert (printed["rows read"], printed["rows imported"], printed["rows rejected"]) == (
        "13",
        "2",
        "11",
    )
    assert sorted(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == [
        "o1",
        "o2",
    ]
    assert report(tmp_path / "orders.rejected.csv") == [
        ["line", "reason"],
        ["3", "bad ordered_at: 'yesterday' is not an ISO 8601 or YYYYMMDD date"],
        ["4", "bad ordered_at: '2024-02-30' is not an ISO 8601 or YYYYMMDD date"],
        ["5", "bad quantity: 'two' is not a whole number from 1 to 1000000"],
        [
            "6",
            "bad unit_price: '1,50' is not an amount like 12.34 "
            "(at most 10 digits before the point, 2 after, no sign)",
        ],
        ["7", "bad email: not a valid email address: 'not-an-email'"],
        ["8", "bad phone: not a possible phone number: '12'"],
        ["9", "missing customer_id"],
        ["10", "missing order_id"],
        ["11", "expected 11 columns, found 5"],
        [
            "12",
            "bad unit_price: '-1.00' is not an amount like 12.34 "
            "(at most 10 digits before the point, 2 after, no sign)",
        ],
        ["13", "bad currency: 'EURO' is not a three-letter ISO 4217 code"],
    ]


def test_nul_bytes_and_invalid_utf8_are_reported_not_imported(tenant, tmp_path):
    # Given rows with a NUL byte and with bytes that are not UTF-8
    path = tmp_path / "orders.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + ",".join(GENERIC_HEADER).encode() + b"\r\n"
        b"c1,,,o1,2024-03-01,S,,1,1.00,,\r\n"
        b"c\x002,,,o2,2024-03-01,S,,1,1.00,,\r\n"
        b"c\xff3,,,o3,2024-03-01,S,,1,1.00,,\r\n"
    )

    # When it is imported
    printed = run_import(tenant, path)

    # Then only the clean row is in, and the others are reported
    assert (printed["rows imported"], printed["rows rejected"]) == ("1", "2")
    assert report(tmp_path / "orders.rejected.csv")[1:] == [
        ["3", "customer_id contains a NUL byte or invalid UTF-8"],
        ["4", "customer_id contains a NUL byte or invalid UTF-8"],
    ]


def test_an_order_whose_lines_name_different_customers_is_rejected_whole(tenant, tmp_path):
    # Given an order whose second line names another customer
    rows = [
        ["c1", "", "", "o1", "2024-03-01", "A", "", "1", "1.00", "", ""],
        ["c2", "", "", "o1", "2024-03-01", "B", "", "1", "1.00", "", ""],
        ["c2", "", "", "o2", "2024-03-01", "B", "", "1", "1.00", "", ""],
    ]
    path = write_csv(tmp_path / "orders.csv", rows)

    # When it is imported
    printed = run_import(tenant, path, "--report", str(tmp_path / "bad.csv"))

    # Then neither of its lines is imported, and both are reported
    assert (printed["rows imported"], printed["rows rejected"]) == ("1", "2")
    assert list(Order.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["o2"]
    reason = "order o1 has lines for different customers (c1, c2)"
    assert report(tmp_path / "bad.csv") == [["line", "reason"], ["2", reason], ["3", reason]]


def test_rerun_of_the_same_file_adds_and_changes_nothing(tenant, tmp_path):
    # Given a file that was imported once
    path = write_csv(tmp_path / "orders.csv", GOOD_ROWS)
    run_import(tenant, path)
    before = counts(tenant)
    orders_before = list(Order.objects.for_tenant(tenant).order_by("id").values())

    # When it is imported again
    printed = run_import(tenant, path)

    # Then nothing is created and nothing changes
    assert printed["rows imported"] == "0"
    assert printed["rows already imported"] == "4"
    assert printed["customers created"] == printed["orders created"] == "0"
    assert counts(tenant) == before
    assert list(Order.objects.for_tenant(tenant).order_by("id").values()) == orders_before


def test_dates_in_yyyymmdd_and_iso_8601_forms(tenant, tmp_path):
    # Given one order per date form (the tenant is in Europe/Berlin)
    forms = {
        "a": ("20240301", datetime(2024, 3, 1, tzinfo=BERLIN)),
        "b": ("2024-03-01", datetime(2024, 3, 1, tzinfo=BERLIN)),
        "c": ("2024-03-01T10:15:00", datetime(2024, 3, 1, 10, 15, tzinfo=BERLIN)),
        "d": ("2024-03-01 10:15", datetime(2024, 3, 1, 10, 15, tzinfo=BERLIN)),
        "e": ("2024-03-01T10:15:00Z", datetime(2024, 3, 1, 10, 15, tzinfo=UTC)),
        "f": ("2024-03-01T10:15:00+05:30", datetime(2024, 3, 1, 4, 45, tzinfo=UTC)),
        "g": ("20240301T101500", datetime(2024, 3, 1, 10, 15, tzinfo=BERLIN)),
        "h": ("2024-07-01T12:00", datetime(2024, 7, 1, 10, 0, tzinfo=UTC)),  # summer time
    }
    rows = [["c1", "", "", k, v[0], "S", "", "1", "1.00", "", ""] for k, v in forms.items()]
    path = write_csv(tmp_path / "orders.csv", rows)

    # When it is imported
    run_import(tenant, path)

    # Then each order is placed at that instant
    placed = dict(Order.objects.for_tenant(tenant).values_list("external_id", "placed_at"))
    assert placed == {k: v[1] for k, v in forms.items()}


def _existing_customer(tenant: Tenant, **identities: str) -> Customer:
    customer = Customer.objects.create(tenant=tenant, **identities)
    for kind, value in identities.items():
        CustomerIdentity.objects.create(
            tenant=tenant, customer=customer, kind=kind, source="", value=value
        )
    return customer


@pytest.mark.parametrize(
    ("known", "row_email", "row_phone"),
    [
        ({"email": "ann@example.com"}, "ANN@example.com", ""),
        ({"phone": "+14155552671"}, "", "415-555-2671"),
    ],
    ids=["by email", "by phone"],
)
def test_new_customer_id_with_a_known_contact_lands_on_the_existing_customer(
    tenant, tmp_path, known, row_email, row_phone
):
    # Given a customer known by email or phone, e.g. from a webhook
    ann = _existing_customer(tenant, **known)
    path = write_csv(
        tmp_path / "orders.csv",
        [["shop-77", row_email, row_phone, "o1", "2024-03-01", "S", "", "1", "9.00", "", ""]],
    )

    # When a row with a new storefront id but that email or phone is imported
    printed = run_import(tenant, path)

    # Then its order lands on that customer, who gains the storefront id
    assert printed["customers created"] == "0"
    assert Customer.objects.for_tenant(tenant).count() == 1
    assert Order.objects.for_tenant(tenant).get().customer == ann
    assert CustomerIdentity.objects.for_tenant(tenant).get(kind="external").customer == ann
    assert CustomerIdentity.objects.for_tenant(tenant).get(kind="external").value == "shop-77"


def test_new_customer_ids_sharing_an_email_in_one_file_become_one_customer(tenant, tmp_path):
    # Given three new storefront ids chained by a shared email and a shared phone
    rows = [
        ["a", "x@example.com", "", "o1", "2024-03-01", "S", "", "1", "1.00", "", ""],
        ["b", "x@example.com", "+14155552671", "o2", "2024-03-02", "S", "", "1", "1.00", "", ""],
        ["c", "", "+14155552671", "o3", "2024-03-03", "S", "", "1", "1.00", "", ""],
        ["d", "d@example.com", "", "o4", "2024-03-04", "S", "", "1", "1.00", "", ""],
    ]
    path = write_csv(tmp_path / "orders.csv", rows)

    # When the file is imported
    run_import(tenant, path)

    # Then a, b and c are one customer and d another
    by_order = dict(Order.objects.for_tenant(tenant).values_list("external_id", "customer_id"))
    assert by_order["o1"] == by_order["o2"] == by_order["o3"] != by_order["o4"]
    assert Customer.objects.for_tenant(tenant).count() == 2


def test_another_tenants_customer_with_the_same_id_and_email_is_untouched(
    tenant, other_tenant, tmp_path
):
    # Given the other tenant already imported customer c1 with the same email
    path = write_csv(tmp_path / "orders.csv", GOOD_ROWS[:2])
    run_import(other_tenant, path)
    theirs_before = counts(other_tenant)
    their_customer = Customer.objects.for_tenant(other_tenant).values().get()
    their_identities = set(CustomerIdentity.objects.for_tenant(other_tenant).values_list())

    # When this tenant imports the same customer id and email
    printed = run_import(tenant, path)

    # Then this tenant gets its own customer and nothing of the other tenant changes
    assert printed["customers created"] == "1"
    ours = Customer.objects.for_tenant(tenant).get()
    assert ours.pk != their_customer["id"]
    assert counts(other_tenant) == theirs_before
    assert Customer.objects.for_tenant(other_tenant).values().get() == their_customer
    assert set(CustomerIdentity.objects.for_tenant(other_tenant).values_list()) == their_identities
    assert Order.objects.for_tenant(tenant).get().customer == ours


# The header line of Shopify's orders export, as Shopify writes it.
SHOPIFY_HEADER_LINE = (
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,"
    "Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,"
    "Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,"
    "Lineitem sku,Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,"
    "Billing Name,Billing Street,Billing Address1,Billing Address2,Billing Company,Billing City,"
    "Billing Zip,Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,"
    "Shipping Address1,Shipping Address2,Shipping Company,Shipping City,Shipping Zip,"
    "Shipping Province,Shipping Country,Shipping Phone,Notes,Note Attributes,Cancelled at,"
    "Payment Method,Payment Reference,Refunded Amount,Vendor,Outstanding Balance,Employee,"
    "Location,Device ID,Id,Tags,Risk Level,Source,Lineitem discount,Tax 1 Name,Tax 1 Value,"
    "Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,Tax 4 Name,Tax 4 Value,Tax 5 Name,"
    "Tax 5 Value,Phone,Receipt Number,Duties,Billing Province Name,Shipping Province Name,"
    "Payment ID,Payment Terms Name,Next Payment Due At,Payment References"
)
SHOPIFY_HEADER = SHOPIFY_HEADER_LINE.split(",")


def shopify_row(**values: str) -> list[str]:
    names = {n.lower().replace(" ", "_"): n for n in SHOPIFY_HEADER}
    row = dict.fromkeys(SHOPIFY_HEADER, "")
    for key, value in values.items():
        row[names[key]] = value
    return [row[n] for n in SHOPIFY_HEADER]


def test_shopify_orders_export_is_imported(tenant, tmp_path):
    # Given a Shopify export: order #1001 with two lines (the second leaves the
    # order columns blank) and a cancelled order #1002 of a customer known by phone
    known = _existing_customer(tenant, phone="+33610826417")
    rows = [
        shopify_row(
            name="#1001", email="Sophie@Example.com", financial_status="paid",
            paid_at="2025-10-07 09:50:26 +0200", fulfillment_status="fulfilled",
            currency="EUR", subtotal="95.80", shipping="4.90", taxes="15.97", total="100.70",
            discount_amount="10.00", created_at="2025-10-07 09:50:26 +0200",
            lineitem_quantity="2", lineitem_name="Bio-Collagen Mask", lineitem_price="34.90",
            lineitem_sku="MASK-1", billing_country="FR", id="7410991464714",
            lineitem_discount="10.00", phone="",
        ),
        shopify_row(
            name="#1001", email="Sophie@Example.com", created_at="2025-10-07 09:50:26 +0200",
            lineitem_quantity="1", lineitem_name="Serum", lineitem_price="36.00",
            lineitem_sku="SERUM-1",
        ),
        shopify_row(
            name="#1002", email="", financial_status="voided", currency="EUR",
            subtotal="12.00", total="12.00", created_at="2025-10-08 11:00:00 +0200",
            cancelled_at="2025-10-08 12:00:00 +0200", lineitem_quantity="1",
            lineitem_name="Soap", lineitem_price="12.00", lineitem_sku="",
            billing_country="FR", billing_phone="06 10 82 64 17", id="7410991464715",
        ),
    ]  # fmt: skip
    path = write_csv(tmp_path / "export.csv", rows, header=SHOPIFY_HEADER)

    # When it is imported in the Shopify format
    printed = run_import(tenant, path, "--format", "shopify")

    # Then the orders carry Shopify's ids, numbers, totals and states
    assert (printed["rows imported"], printed["rows rejected"]) == ("3", "0")
    first = Order.objects.for_tenant(tenant).get(external_id="7410991464714")
    assert (first.source, first.number, first.status, first.currency) == (
        "shopify",
        "#1001",
        "fulfilled",
        "EUR",
    )
    assert (first.subtotal, first.shipping_total, first.tax_total) == (
        Decimal("95.80"),
        Decimal("4.90"),
        Decimal("15.97"),
    )
    assert (first.discount_total, first.total) == (Decimal("10.00"), Decimal("100.70"))
    assert first.placed_at == datetime(2025, 10, 7, 7, 50, 26, tzinfo=UTC)
    assert first.customer.email == "sophie@example.com"
    assert {(ln.sku, ln.name, ln.quantity, ln.discount, ln.total) for ln in first.lines.all()} == {
        ("MASK-1", "Bio-Collagen Mask", 2, Decimal("10.00"), Decimal("59.80")),
        ("SERUM-1", "Serum", 1, Decimal("0.00"), Decimal("36.00")),
    }
    second = Order.objects.for_tenant(tenant).get(external_id="7410991464715")
    assert (second.status, second.cancelled_at) == (
        "cancelled",
        datetime(2025, 10, 8, 10, 0, tzinfo=UTC),
    )
    # The French national number is read in the billing country and finds the customer
    assert second.customer == known
    # Shopify's export has no customer id, so no storefront identity is invented
    assert not CustomerIdentity.objects.for_tenant(tenant).filter(kind=IdentityKind.EXTERNAL)
    assert Product.objects.for_tenant(tenant).get(sku="MASK-1").name == "Bio-Collagen Mask"

    # And a re-run adds nothing
    assert run_import(tenant, path, "--format", "shopify")["rows imported"] == "0"
    assert Order.objects.for_tenant(tenant).count() == 2


@pytest.mark.parametrize(
    ("trust", "checked_by"), [(None, "set-based locks"), (False, "row triggers")]
)
def test_references_checked_by_locks_or_by_triggers_give_the_same_result(
    tenant, other_tenant, tmp_path, trust, checked_by
):
    # Given the good rows (the suite's database role may skip the row triggers)
    path = write_csv(tmp_path / "orders.csv", GOOD_ROWS)

    # When imported either way
    result = orders_import(tenant=tenant, path=path, trust_references=trust)

    # Then the rows are the same
    assert result.references == checked_by
    assert (result.rows_imported, result.customers_created, result.orders_created) == (4, 2, 3)
    assert counts(tenant) == {
        "Customer": 2,
        "CustomerIdentity": 5,
        "Order": 3,
        "OrderLine": 4,
        "Product": 2,
        "ProductFamily": 2,
    }
    assert set(counts(other_tenant).values()) == {0}


def test_a_key_taken_by_a_concurrent_writer_falls_back_to_on_conflict(tenant):
    # Given an email identity that another writer created after the import
    # looked for existing ones (the fast INSERT then hits the unique key)
    ann = _existing_customer(tenant, email="ann@example.com")
    insert = (
        "INSERT INTO commerce_customeridentity (tenant_id, customer_id, kind, source, value, "
        "created_at) SELECT %(t)s, %(c)s, 'email', '', v, now() "
        "FROM unnest(ARRAY['ann@example.com', 'bob@example.com']) v"
    )
    with connection.cursor() as cursor, cursor.connection.cursor() as cur:
        merge = _Merge(
            cur,
            tenant=tenant,
            source="storefront",
            form=FORMATS["generic"],
            result=ImportResult(),
            log=None,
        )

        # When the merge inserts identities
        inserted = merge.insert_missing(
            "identities",
            fast=[insert],
            safe=[insert + " ON CONFLICT (tenant_id, kind, source, value) DO NOTHING"],
            extra={"c": ann.pk},
        )

    # Then the safe statement ran instead: the new identity is in, nothing doubled
    assert inserted == 1
    values = CustomerIdentity.objects.for_tenant(tenant).values_list("value", flat=True)
    assert sorted(values) == ["ann@example.com", "bob@example.com"]


def test_a_file_without_the_generic_header_is_refused(tenant, tmp_path):
    path = write_csv(tmp_path / "orders.csv", [["c1", "o1"]], header=["customer_id", "order_id"])
    with pytest.raises(CommandError, match="The header lacks email, phone, ordered_at"):
        run_import(tenant, path)
    assert counts(tenant)["Order"] == 0


def test_an_unknown_tenant_is_refused(db, tmp_path):
    path = write_csv(tmp_path / "orders.csv", GOOD_ROWS)
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        call_command("import_orders", "--tenant", "nope", str(path))


def test_on_sqlite_the_command_says_it_needs_postgresql(tmp_path):
    # Given the embedded SQLite configuration
    path = write_csv(tmp_path / "orders.csv", GOOD_ROWS)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}

    # When the command runs
    done = subprocess.run(
        [sys.executable, "manage.py", "import_orders", "--tenant", "x", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it fails with a message that says what to do
    assert done.returncode == 1
    assert "import_orders needs PostgreSQL" in done.stderr
    assert "DATABASE_URL" in done.stderr


def _physical_lines(text: str) -> int:
    return len(re.findall(r"\r\n|\r|\n", text))


garbage_field = st.text(max_size=12)
wrong_width = st.lists(garbage_field, min_size=1, max_size=15).filter(lambda r: len(r) != 11)
# Eleven columns of noise whose date has no digit in it, so it can never be valid.
eleven_columns = st.tuples(
    *[garbage_field] * 4,
    st.text(alphabet=st.characters(blacklist_categories=["Nd", "Cs"]), max_size=12),
    *[garbage_field] * 6,
).map(list)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(garbage=st.lists(st.one_of(wrong_width, eleven_columns), min_size=1, max_size=8))
def test_garbage_rows_never_crash_the_command_and_are_all_reported(tenant, tmp_path, garbage):
    # Given a good row followed by random garbage rows
    good = [
        f"c-{uuid.uuid4()}",
        "",
        "",
        f"o-{uuid.uuid4()}",
        "2024-03-01",
        "S",
        "",
        "1",
        "1",
        "",
        "",
    ]
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(GENERIC_HEADER)
    out.writerow(good)
    starts = []
    for row in garbage:
        starts.append(_physical_lines(buffer.getvalue()) + 1)
        out.writerow(row)
    name = uuid.uuid4().hex
    path = tmp_path / f"{name}.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")

    # When it is imported
    printed = run_import(tenant, path)

    # Then the good row is imported and every garbage row is reported at its line
    assert printed["rows imported"] == "1"
    assert printed["rows rejected"] == str(len(garbage))
    reported = report(tmp_path / f"{name}.rejected.csv")
    assert [int(line) for line, _ in reported[1:]] == starts
    assert all(reason for _, reason in reported[1:])
