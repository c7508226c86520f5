"""CSV order import: one row per order line, streamed into PostgreSQL.

Two halves, kept apart:

* **Parsing** (pure, no database): a format turns the header into a row parser;
  the parser turns one CSV row into a tuple of staging values or raises
  :class:`RowError` with a reason for the rejection report.
* **Merging** (PostgreSQL only): the parsed rows of the whole file are streamed
  with ``COPY`` into a temporary staging table, then a handful of set-based
  ``INSERT … SELECT … ON CONFLICT`` statements create what is missing:
  customers (with identity resolution), identities, product families,
  products, orders, and the lines of the orders this run created.

Lines are inserted only for orders this run created, so a re-run of the same
file adds nothing. The whole import is one transaction: it lands whole or not
at all. Measured in ``bench/import.py``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils.text import slugify
from psycopg import sql

from commerce.identity import DEFAULT_REGION, BadIdentifier, normalize_email, normalize_phone
from commerce.models import (
    Customer,
    CustomerIdentity,
    Order,
    OrderLine,
    Product,
    ProductFamily,
)
from commerce.services.orders import orders_bulk_loaded
from retention.errors import InvalidInput
from retention.models import Tenant

logger = logging.getLogger(__name__)

GENERIC_HEADER = (
    "customer_id",
    "email",
    "phone",
    "order_id",
    "ordered_at",
    "sku",
    "product_family",
    "quantity",
    "unit_price",
    "order_total",
    "currency",
)

# Rows between progress-bar updates; the bar reads the byte offset of the file.
PROGRESS_EVERY = 8192
# For the merge's transaction only: hash aggregates over a million staged rows
# stay in memory; JIT compiling these one-off statements costs more than it
# saves; the temp tables' statistics need only a small sample.
MERGE_SETTINGS = {"work_mem": "256MB", "jit": "off", "default_statistics_target": "10"}
# Caches for normalising repeated contact points (phonenumbers costs ~12 µs a call).
IDENTIFIER_CACHE_SIZE = 2**17
MAX_QUANTITY = 1_000_000
_QUANTITIES = {str(q): q for q in range(1, 100)}
MAX_AMOUNT = 10**12  # numeric(14, 2) holds less than this


class RowError(ValueError):
    """A row that cannot be imported; the message is the report's reason."""


class ImportFileError(InvalidInput):
    """The file as a whole cannot be imported (unreadable, wrong header)."""


RowParser = Callable[[list[str], int], tuple]


# --- Field parsing (pure) ----------------------------------------------------

_PRICE_RE = re.compile(r"\d{1,10}(?:\.\d{1,2})?")
_TOTAL_RE = re.compile(r"\d{1,12}(?:\.\d{1,2})?")
_QUANTITY_RE = re.compile(r"\d{1,7}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_SPACED_OFFSET_RE = re.compile(r"(.+\d) ?([+-]\d{2}):?(\d{2})")
# A subset of what Django's EmailValidator accepts, checked without it (5x faster).
_EMAIL_FAST_RE = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def text_field(raw: str, name: str, max_length: int, *, required: bool) -> str:
    """A trimmed text value that fits its column and PostgreSQL ``text``."""
    value = raw.strip()
    if not value:
        if required:
            raise RowError(f"missing {name}")
        return ""
    if len(value) > max_length:
        raise RowError(f"{name} is longer than {max_length} characters")
    if "\x00" in value or "\ufffd" in value:
        raise RowError(f"{name} contains a NUL byte or invalid UTF-8")
    return value


def parse_when(raw: str, tz: tzinfo, name: str = "ordered_at") -> datetime:
    """ISO 8601 (date, date and time, with or without offset) or ``YYYYMMDD``;
    also Shopify's ``2024-01-15 10:23:45 -0500``. Naive values are in ``tz``."""
    text = raw.strip()
    if not text:
        raise RowError(f"missing {name}")
    if len(text) > 64:
        raise RowError(f"bad {name}: {text[:40]!r}… is not an ISO 8601 or YYYYMMDD date")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        spaced = _SPACED_OFFSET_RE.fullmatch(text)
        try:
            if spaced is None:
                raise ValueError(text) from None
            when = datetime.fromisoformat(f"{spaced[1]}{spaced[2]}:{spaced[3]}")
        except ValueError:
            raise RowError(
                f"bad {name}: {text[:40]!r} is not an ISO 8601 or YYYYMMDD date"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    if not 1970 <= when.year <= 2100:
        raise RowError(f"bad {name}: year {when.year} is outside 1970-2100")
    return when


def parse_amount(raw: str, name: str, *, required: bool, unit: bool = False) -> str | None:
    """A non-negative amount with at most two decimals, returned as text for COPY.
    Unit prices fit ``numeric(12, 2)`` (products), totals ``numeric(14, 2)``."""
    value = raw.strip()
    if not value:
        if required:
            raise RowError(f"missing {name}")
        return None
    if (_PRICE_RE if unit else _TOTAL_RE).fullmatch(value) is None:
        limit = "10" if unit else "12"
        raise RowError(
            f"bad {name}: {value[:40]!r} is not an amount like 12.34 "
            f"(at most {limit} digits before the point, 2 after, no sign)"
        )
    return value


def parse_quantity(raw: str, name: str = "quantity") -> int:
    value = raw.strip()
    if not value:
        raise RowError(f"missing {name}")
    if _QUANTITY_RE.fullmatch(value) is None or not 1 <= int(value) <= MAX_QUANTITY:
        raise RowError(f"bad {name}: {value[:40]!r} is not a whole number from 1 to 1000000")
    return int(value)


def parse_currency(raw: str) -> str | None:
    value = raw.strip().upper()
    if not value:
        return None
    if _CURRENCY_RE.fullmatch(value) is None:
        raise RowError(f"bad currency: {value[:40]!r} is not a three-letter ISO 4217 code")
    return value


@functools.lru_cache(maxsize=IDENTIFIER_CACHE_SIZE)
def _email_or_error(raw: str) -> tuple[str, str]:
    email = raw.strip().lower()
    if len(email) <= 254 and _EMAIL_FAST_RE.fullmatch(email):
        return email, ""
    try:
        return normalize_email(email), ""
    except BadIdentifier as exc:
        return "", str(exc)


@functools.lru_cache(maxsize=IDENTIFIER_CACHE_SIZE)
def _phone_or_error(raw: str, region: str) -> tuple[str, str]:
    if "\x00" in raw:
        return "", "phone number contains a NUL byte"
    try:
        return normalize_phone(raw, region), ""
    except BadIdentifier as exc:
        return "", str(exc)


def parse_email(raw: str) -> str:
    """Lower-cased email or ""; a bad one rejects the row."""
    if not raw or raw.isspace():
        return ""
    if len(raw) > 320:  # keeps huge values out of the cache
        raise RowError("bad email: email is longer than 254 characters")
    email, error = _email_or_error(raw)
    if error:
        raise RowError(f"bad email: {error}")
    return email


def parse_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 phone or ""; a bad one rejects the row."""
    if not raw or raw.isspace():
        return ""
    if len(raw) > 64:  # keeps huge values out of the cache
        raise RowError("bad phone: phone number is too long")
    phone, error = _phone_or_error(raw, region)
    if error:
        raise RowError(f"bad phone: {error}")
    return phone


@functools.lru_cache(maxsize=4096)
def family_slug(name: str) -> str:
    """The slug a product family is found by; names without Latin letters or
    digits get a stable hash-based slug."""
    slug = slugify(name)[:100].strip("-")
    return slug or "family-" + hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]


def _column_index(header: list[str], wanted: Iterable[str], *, fmt: str) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ImportFileError(f"The header repeats the column(s) {', '.join(dupes)}.")
    missing = [w for w in wanted if w.lower() not in names]
    if missing:
        raise ImportFileError(
            f"The header lacks {', '.join(missing)} (format {fmt}); the first row must name "
            f"the columns, e.g. {','.join(GENERIC_HEADER) if fmt == 'generic' else 'Name,Email,…'}."
        )
    return {name: i for i, name in enumerate(names)}


# --- Formats -------------------------------------------------------------------

GENERIC_STAGE_COLUMNS = (
    "line",
    # the order's columns
    "cust_key",
    "email",
    "phone",
    "order_id",
    "placed_at",
    "order_total",
    "currency",
    # the product's columns
    "sku",
    "family_name",
    "family_slug",
    "unit_price",
    "quantity",
)
# Parsed values of recent products; cleared when full, so memory stays bounded.
PRODUCT_CACHE_SIZE = 65_536


def generic_parser(header: list[str], tz: tzinfo) -> RowParser:
    """The generic format: ``GENERIC_HEADER`` in any order (other columns ignored).

    An order's lines repeat its columns, and products repeat across orders, so
    both are parsed once and reused while they repeat (a third of the cost)."""
    at = _column_index(header, GENERIC_HEADER, fmt="generic")
    width = len(header)
    i_cid, i_email, i_phone, i_oid, i_at, i_sku, i_fam, i_qty, i_price, i_total, i_cur = (
        at[c] for c in GENERIC_HEADER
    )
    last_order: list = [None, ()]
    products: dict[tuple[str, str, str], tuple] = {}

    def parse_order(f: list[str]) -> tuple:
        # Instants go to COPY as ISO text: psycopg's datetime dumper costs 2 µs a row.
        return (
            text_field(f[i_cid], "customer_id", 254, required=True),
            parse_email(f[i_email]),
            parse_phone(f[i_phone]),
            text_field(f[i_oid], "order_id", 100, required=True),
            parse_when(f[i_at], tz).isoformat(),
            parse_amount(f[i_total], "order_total", required=False),
            parse_currency(f[i_cur]),
        )

    def parse_product(sku: str, family: str, price: str) -> tuple:
        family = text_field(family, "product_family", 100, required=False)
        return (
            text_field(sku, "sku", 100, required=False),
            family,
            family_slug(family) if family else "",
            parse_amount(price, "unit_price", required=True, unit=True),
        )

    def parse(f: list[str], line: int) -> tuple:
        if len(f) != width:
            raise RowError(f"expected {width} columns, found {len(f)}")
        key = (f[i_cid], f[i_email], f[i_phone], f[i_oid], f[i_at], f[i_total], f[i_cur])
        if key == last_order[0]:
            order = last_order[1]
        else:
            order = parse_order(f)
            last_order[0], last_order[1] = key, order
        pkey = (f[i_sku], f[i_fam], f[i_price])
        product = products.get(pkey)
        if product is None:
            product = parse_product(*pkey)
            if len(products) >= PRODUCT_CACHE_SIZE:
                products.clear()
            products[pkey] = product
        quantity = _QUANTITIES.get(f[i_qty]) or parse_quantity(f[i_qty])
        return (line, *order, *product, quantity)

    return parse


SHOPIFY_STAGE_COLUMNS = (
    "line",
    "cust_key",
    "email",
    "phone",
    "order_id",
    "number",
    "status",
    "placed_at",
    "cancelled_at",
    "currency",
    "order_total",
    "subtotal",
    "discount_total",
    "shipping_total",
    "tax_total",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "line_discount",
)
SHOPIFY_REQUIRED = ("Name", "Created at", "Lineitem quantity", "Lineitem price")
# Order-level columns Shopify fills on an order's first line only.
SHOPIFY_ORDER_COLUMNS = (
    "id",
    "email",
    "phone",
    "billing phone",
    "shipping phone",
    "billing country",
    "financial status",
    "fulfillment status",
    "currency",
    "subtotal",
    "shipping",
    "taxes",
    "total",
    "discount amount",
    "created at",
    "cancelled at",
)


def shopify_status(*, financial: str, fulfillment: str, cancelled: bool) -> str:
    financial, fulfillment = financial.lower(), fulfillment.lower()
    if cancelled or financial == "voided":
        return "cancelled"
    if financial == "refunded":
        return "refunded"
    if financial in {"pending", "authorized", "unpaid", "expired"}:
        return "open"
    return "fulfilled" if fulfillment == "fulfilled" else "paid"


def shopify_parser(header: list[str], tz: tzinfo) -> RowParser:
    """Shopify's orders export: one row per line item; the order columns are
    filled on the first line and carried to the order's later lines. The
    customer is found by email (else phone); the order key is ``Id`` (else ``Name``)."""
    at = _column_index(header, SHOPIFY_REQUIRED, fmt="shopify")
    width = len(header)
    carried = [(c, at[c]) for c in SHOPIFY_ORDER_COLUMNS if c in at]
    i_name, i_qty, i_price = at["name"], at["lineitem quantity"], at["lineitem price"]
    i_sku, i_item, i_disc = (
        at.get(c) for c in ("lineitem sku", "lineitem name", "lineitem discount")
    )
    state: dict[str, Any] = {"name": None, "values": {}}

    def parse(f: list[str], line: int) -> tuple:
        if len(f) != width:
            raise RowError(f"expected {width} columns, found {len(f)}")
        name = text_field(f[i_name], "Name", 100, required=True)
        if name != state["name"]:
            state["name"], state["values"] = name, {}
        order = state["values"]
        for column, i in carried:
            if f[i].strip():
                order[column] = f[i]

        def get(column: str) -> str:
            return order.get(column, "")

        def cell(i: int | None) -> str:
            return f[i] if i is not None else ""

        region = get("billing country").strip().upper() or DEFAULT_REGION
        region = region if re.fullmatch(r"[A-Z]{2}", region) else DEFAULT_REGION
        email = parse_email(get("email"))
        phone = ""
        for column in ("phone", "billing phone", "shipping phone"):
            if get(column).strip():
                phone = parse_phone(get(column).lstrip("'"), region)
                break
        if not (email or phone):
            raise RowError("no Email or Phone to identify the customer")
        cancelled = get("cancelled at").strip()
        order_id = text_field(get("id"), "Id", 100, required=False) or name
        return (
            line,
            email or phone,
            email,
            phone,
            order_id,
            name[:50],
            shopify_status(
                financial=get("financial status"),
                fulfillment=get("fulfillment status"),
                cancelled=bool(cancelled),
            ),
            parse_when(get("created at"), tz, "Created at").isoformat(),
            parse_when(cancelled, tz, "Cancelled at").isoformat() if cancelled else None,
            parse_currency(get("currency")),
            parse_amount(get("total"), "Total", required=False),
            parse_amount(get("subtotal"), "Subtotal", required=False),
            parse_amount(get("discount amount"), "Discount Amount", required=False),
            parse_amount(get("shipping"), "Shipping", required=False),
            parse_amount(get("taxes"), "Taxes", required=False),
            text_field(cell(i_sku), "Lineitem sku", 100, required=False),
            text_field(cell(i_item), "Lineitem name", 300, required=False),
            parse_quantity(f[i_qty], "Lineitem quantity"),
            parse_amount(f[i_price], "Lineitem price", required=True, unit=True),
            parse_amount(cell(i_disc), "Lineitem discount", required=False),
        )

    return parse


@dataclass(frozen=True)
class ImportFormat:
    name: str
    default_source: str
    stage_columns: tuple[str, ...]
    make_parser: Callable[[list[str], tzinfo], RowParser]
    # Whether cust_key is the storefront's own customer id (an external identity).
    external_ids: bool


FORMATS = {
    "generic": ImportFormat("generic", "storefront", GENERIC_STAGE_COLUMNS, generic_parser, True),
    "shopify": ImportFormat("shopify", "shopify", SHOPIFY_STAGE_COLUMNS, shopify_parser, False),
}


def csv_rows(stream: io.TextIOBase) -> Iterable[tuple[int, list[str] | None, str]]:
    """``(line, fields, error)`` for each non-blank row after the header; ``line``
    is the file line the row starts on. A row the CSV reader cannot read comes
    with ``fields=None`` and the error."""
    reader = csv.reader(stream)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"unreadable CSV: {exc}"
            continue
        if fields:
            yield start, fields, ""


# --- Staging and merging (PostgreSQL) --------------------------------------------

STAGE_DDL = """
CREATE TEMP TABLE imp_stage (
    line integer NOT NULL,
    cust_key text NOT NULL,
    email text NOT NULL DEFAULT '',
    phone text NOT NULL DEFAULT '',
    order_id text NOT NULL,
    number text,
    status text,
    placed_at timestamptz NOT NULL,
    cancelled_at timestamptz,
    currency text,
    order_total numeric,
    subtotal numeric,
    discount_total numeric,
    shipping_total numeric,
    tax_total numeric,
    sku text NOT NULL DEFAULT '',
    name text,
    family_name text NOT NULL DEFAULT '',
    family_slug text NOT NULL DEFAULT '',
    quantity integer NOT NULL,
    unit_price numeric NOT NULL,
    line_discount numeric
) ON COMMIT DROP
"""
# Order columns only some formats fill, with their staging types.
ORDER_OPTIONAL_COLUMNS = (
    ("cancelled_at", "timestamptz"),
    ("number", "text"),
    ("status", "text"),
    ("currency", "text"),
    ("order_total", "numeric"),
    ("subtotal", "numeric"),
    ("discount_total", "numeric"),
    ("shipping_total", "numeric"),
    ("tax_total", "numeric"),
)
TEMP_TABLES = (
    "imp_stage",
    "imp_order",
    "imp_bad",
    "imp_val",
    "imp_edge",
    "imp_cust",
    "imp_newcust",
    "imp_map",
    "imp_sku",
    "imp_created",
)


@dataclass
class ImportResult:
    rows_read: int = 0
    rows_imported: int = 0
    rows_existing: int = 0
    rows_rejected: int = 0
    customers_created: int = 0
    identities_created: int = 0
    families_created: int = 0
    products_created: int = 0
    orders_created: int = 0
    lines_created: int = 0
    seconds: float = 0.0
    report_path: Path | None = None
    references: str = ""  # how foreign keys were checked: "set-based locks" or "row triggers"
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


def default_report_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


def orders_import(
    *,
    tenant: Tenant,
    path: Path,
    fmt: str = "generic",
    source: str | None = None,
    report_path: Path | None = None,
    progress: Callable[[str, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    trust_references: bool | None = None,
) -> ImportResult:
    """Import an orders CSV for ``tenant``; rejected rows go to ``report_path``
    (``line,reason``, default next to the file; written when the import
    commits). ``progress`` receives ``("read", bytes)`` while the file is
    read and ``(step, 0)`` as each merge step starts; ``log`` gets one line
    per merge step with its time. ``trust_references`` (default: when
    the database role may) skips PostgreSQL's per-row foreign-key triggers and
    locks the referenced rows set-based instead; see :meth:`_Merge.trusted`."""
    if connection.vendor != "postgresql":
        raise ImportFileError(
            "import_orders needs PostgreSQL (it streams with COPY); set DATABASE_URL, "
            "e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention."
        )
    if fmt not in FORMATS:
        raise ImportFileError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    form = FORMATS[fmt]
    source = (source or form.default_source).strip()
    if not source or len(source) > 50:
        raise ImportFileError("The source must be 1-50 characters, e.g. storefront.")
    report_path = report_path or default_report_path(path)
    if report_path.resolve() == path.resolve():
        raise ImportFileError("The report would overwrite the input file.")
    result = ImportResult(report_path=report_path)
    started = time.perf_counter()
    partial = report_path.with_name(report_path.name + ".part")
    try:
        with (
            path.open("rb") as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as text,
            partial.open("w", newline="", encoding="utf-8") as report_file,
            transaction.atomic(),
            connection.cursor() as django_cursor,
        ):
            report = csv.writer(report_file)
            report.writerow(("line", "reason"))
            with django_cursor.connection.cursor() as cur:
                _drop_temp_tables(cur)
                cur.execute(STAGE_DDL)
                _stage(cur, form, tenant, raw, text, report, result, progress)
                result.phases["parse+copy"] = time.perf_counter() - started
                merge = _Merge(cur, tenant=tenant, source=source, form=form, result=result, log=log)
                rejected = merge(trust_references=trust_references, progress=progress)
                report.writerows(sorted(rejected))
                result.rows_rejected += len(rejected)
                _drop_temp_tables(cur)
            commit_started = time.perf_counter()
        partial.replace(report_path)
    finally:
        partial.unlink(missing_ok=True)
    result.phases["commit"] = time.perf_counter() - commit_started
    result.rows_existing = result.rows_read - result.rows_rejected - result.rows_imported
    result.seconds = time.perf_counter() - started
    logger.info(
        "commerce.orders_imported tenant_id=%s format=%s rows=%s imported=%s rejected=%s "
        "customers=%s orders=%s seconds=%.1f",
        tenant.pk,
        fmt,
        result.rows_read,
        result.rows_imported,
        result.rows_rejected,
        result.customers_created,
        result.orders_created,
        result.seconds,
    )
    if result.rows_imported:
        orders_bulk_loaded(tenant)
    return result


def _stage(
    cur: psycopg.Cursor,
    form: ImportFormat,
    tenant: Tenant,
    raw: io.BufferedReader,
    text: io.TextIOWrapper,
    report: Any,
    result: ImportResult,
    progress: Callable[[str, int], None] | None,
) -> None:
    """Stream the file's rows through the parser into ``imp_stage`` with COPY;
    rejected rows go to ``report`` (a csv writer) as they are met."""
    rows = iter(csv_rows(text))
    header = next((fields for _, fields, _ in rows if fields), None)
    if header is None:
        raise ImportFileError("The file is empty or has no header row.")
    parse = form.make_parser(header, tenant.tzinfo)
    copy_sql = sql.SQL("COPY imp_stage ({}) FROM STDIN").format(
        sql.SQL(", ").join(map(sql.Identifier, form.stage_columns))
    )
    read = rejected = offset = 0
    writerow = report.writerow
    with cur.copy(copy_sql) as copy:
        write_row = copy.write_row
        for line, fields, error in rows:
            read += 1
            if fields is not None:
                try:
                    write_row(parse(fields, line))
                except RowError as exc:
                    error = str(exc)
            if error:
                rejected += 1
                writerow((line, error))
            if progress is not None and read % PROGRESS_EVERY == 0:
                progress("read", raw.tell() - offset)
                offset = raw.tell()
    if progress is not None:
        progress("read", raw.tell() - offset)
    result.rows_read, result.rows_rejected = read, rejected


def _drop_temp_tables(cur: psycopg.Cursor) -> None:
    # Tables are ON COMMIT DROP, but tests run the import inside an outer
    # transaction (a savepoint here), so a second import would find them.
    cur.execute(
        sql.SQL("DROP TABLE IF EXISTS {}").format(
            sql.SQL(", ").join(map(sql.Identifier, TEMP_TABLES))
        )
    )


def _model_defaults(model, *, skip: Iterable[str]) -> tuple[sql.Composable, sql.Composable, dict]:
    """``(columns, placeholders, params)`` for the columns the merge does not set:
    they get the model's own defaults, so the SQL stays right when a model gains
    a field with a default."""
    skip = set(skip)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and f.column not in skip]
    prefix = f"default_{model._meta.model_name}"
    cols = sql.SQL(", ").join(sql.Identifier(f.column) for f in fields)
    vals = sql.SQL(", ").join(sql.Placeholder(f"{prefix}_{f.column}") for f in fields)
    params = {
        f"{prefix}_{f.column}": f.get_db_prep_save(f.get_default(), connection) for f in fields
    }
    return cols, vals, params


def _sql(template: str, **parts: sql.Composable) -> sql.Composed:
    tables = {
        "customer": Customer,
        "identity": CustomerIdentity,
        "family": ProductFamily,
        "product": Product,
        "order": Order,
        "line": OrderLine,
    }
    names = {k: sql.Identifier(m._meta.db_table) for k, m in tables.items()}
    return sql.SQL(template).format(**names, **parts)


class _Merge:
    """The set-based merge of ``imp_stage`` into one tenant's tables, in steps.
    Every statement reads the temp tables and writes rows of ``tenant`` only."""

    def __init__(
        self,
        cur: psycopg.Cursor,
        *,
        tenant: Tenant,
        source: str,
        form: ImportFormat,
        result: ImportResult,
        log: Callable[[str], None] | None,
    ):
        self.cur, self.form, self.result, self.log = cur, form, result, log
        self.progress: Callable[[str, int], None] | None = None
        self.params: dict[str, Any] = {
            "t": tenant.pk,
            "s": source,
            "currency": tenant.currency,
            "now": Customer._meta.get_field("created_at").get_default(),
        }

    def run(self, label: str, statement: str | sql.Composable, extra: dict | None = None) -> int:
        if self.progress is not None:
            self.progress(label, 0)
        t0 = time.perf_counter()
        self.cur.execute(statement, {**self.params, **(extra or {})})
        seconds = time.perf_counter() - t0
        self.result.phases[label] = self.result.phases.get(label, 0.0) + seconds
        if self.log:
            self.log(f"  {label}: {self.cur.rowcount} rows, {seconds:.2f}s")
        return self.cur.rowcount

    def __call__(
        self,
        *,
        trust_references: bool | None,
        progress: Callable[[str, int], None] | None = None,
    ) -> list[tuple[int, str]]:
        self.progress = progress
        # One import per tenant at a time: two would create the same new customers.
        self.run("lock", "SELECT pg_advisory_xact_lock(hashtext('commerce.import_orders'), %(t)s)")
        self.cur.execute("SELECT current_setting('default_statistics_target')")
        statistics_target = self.cur.fetchone()[0]
        for name, value in MERGE_SETTINGS.items():
            self.run("settings", "SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value})
        self.run("analyze stage", "ANALYZE imp_stage")
        rejected = self.reject_inconsistent_orders()
        self.resolve_customers()
        with self.trusted(trust_references) as trusted:
            self.insert_customers()
            self.insert_catalogue(trusted)
            self.insert_orders_and_lines()
        # Fresh statistics, so the next import (and everyone else) plans well.
        self.run(
            "settings",
            "SELECT set_config('default_statistics_target', %(value)s, true)",
            {"value": statistics_target},
        )
        self.run("analyze", _sql("ANALYZE {customer}, {identity}, {family}, {product}, {order}"))
        return rejected

    def reject_inconsistent_orders(self) -> list[tuple[int, str]]:
        """Orders as the file states them; an order whose lines name different
        customers, or whose lines add up past the columns' range, is rejected whole."""
        # Order columns a format does not fill are NULL, not aggregated over a million rows.
        optional = [
            sql.SQL(
                "max({0}) AS {0}" if name in self.form.stage_columns else "NULL::{1} AS {0}"
            ).format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in ORDER_OPTIONAL_COLUMNS
        ]
        line_total = sql.SQL(
            "greatest(quantity * unit_price - coalesce(line_discount, 0), 0)"
            if "line_discount" in self.form.stage_columns
            else "quantity * unit_price"
        )
        self.run(
            "orders staged",
            sql.SQL(
                """CREATE TEMP TABLE imp_order ON COMMIT DROP AS
                SELECT order_id, min(cust_key) AS cust_key, max(cust_key) AS cust_key_max,
                    min(placed_at) AS placed_at, {optional}, sum({line_total}) AS lines_total
                FROM imp_stage GROUP BY order_id"""
            ).format(optional=sql.SQL(", ").join(optional), line_total=line_total),
        )
        bad = self.run(
            "orders rejected",
            """CREATE TEMP TABLE imp_bad ON COMMIT DROP AS
            SELECT order_id, 'order ' || left(order_id, 40) || CASE WHEN cust_key <> cust_key_max
                THEN ' has lines for different customers (' || left(cust_key, 40) || ', '
                    || left(cust_key_max, 40) || ')'
                ELSE ': its lines add up to more than 999999999999.99' END AS reason
            FROM imp_order WHERE cust_key <> cust_key_max OR lines_total >= %(max)s""",
            {"max": MAX_AMOUNT},
        )
        if not bad:
            return []
        self.run(
            "rows rejected",
            """DELETE FROM imp_stage s USING imp_bad b WHERE s.order_id = b.order_id
            RETURNING s.line, b.reason""",
        )
        rejected = self.cur.fetchall()
        self.run(
            "orders dropped",
            "DELETE FROM imp_order o USING imp_bad b WHERE o.order_id = b.order_id",
        )
        return rejected

    def resolve_customers(self) -> None:
        """Map each customer key of the file to a customer in ``imp_map``.

        The key's own storefront id wins; else an email or phone already known
        for a customer of the tenant (the oldest such customer, as merges keep
        the oldest); else keys of this file that share an email or phone become
        one new customer (repeated min-label propagation, known customers first)."""
        self.run(
            "contact points",
            """CREATE TEMP TABLE imp_val ON COMMIT DROP AS
            SELECT DISTINCT s.cust_key, v.kind, v.value
            FROM imp_stage s CROSS JOIN LATERAL (VALUES ('email', s.email), ('phone', s.phone))
                AS v (kind, value)
            WHERE v.value <> ''""",
        )
        self.run("analyze contact points", "ANALYZE imp_val")
        by_external = _sql(
            """SELECT i.value, coalesce(cu.merged_into_id, cu.id) AS customer
            FROM {identity} i JOIN {customer} cu ON cu.id = i.customer_id AND cu.tenant_id = %(t)s
            WHERE i.tenant_id = %(t)s AND i.kind = 'external' AND i.source = %(s)s"""
            if self.form.external_ids
            else "SELECT NULL::text AS value, NULL::bigint AS customer WHERE false"
        )
        # A label sorts known customers ('0' + id) before new ones ('1' + key).
        self.run(
            "customers resolved",
            _sql(
                """CREATE TEMP TABLE imp_cust ON COMMIT DROP AS
                SELECT k.cust_key, k.first_at, r.customer IS NOT NULL AS known,
                    CASE WHEN r.customer IS NULL THEN '1' || k.cust_key
                        ELSE '0' || lpad(r.customer::text, 20, '0') END AS label
                FROM (SELECT cust_key, min(placed_at) AS first_at FROM imp_order
                    GROUP BY cust_key) k
                LEFT JOIN ({by_external}) ext ON ext.value = k.cust_key
                LEFT JOIN (
                    SELECT v.cust_key, min(coalesce(cu.merged_into_id, cu.id)) AS customer
                    FROM imp_val v
                    JOIN {identity} i ON i.tenant_id = %(t)s AND i.kind = v.kind
                        AND i.source = '' AND i.value = v.value
                    JOIN {customer} cu ON cu.id = i.customer_id AND cu.tenant_id = %(t)s
                    GROUP BY v.cust_key) val ON val.cust_key = k.cust_key
                CROSS JOIN LATERAL (SELECT coalesce(ext.customer, val.customer) AS customer) r""",
                by_external=by_external,
            ),
        )
        shared = self.run(
            "shared contact points",
            """CREATE TEMP TABLE imp_edge ON COMMIT DROP AS
            SELECT a.cust_key AS a, b.cust_key AS b
            FROM imp_val a JOIN imp_val b ON a.kind = b.kind AND a.value = b.value
                AND a.cust_key <> b.cust_key""",
        )
        for _ in range(100 if shared else 0):
            if not self.run(
                "shared contact points",
                """UPDATE imp_cust c SET label = n.label
                FROM (SELECT e.a, min(c2.label) AS label FROM imp_edge e
                      JOIN imp_cust c2 ON c2.cust_key = e.b GROUP BY e.a) n
                WHERE c.cust_key = n.a AND NOT c.known AND n.label < c.label""",
            ):
                break
        self.cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Customer._meta.db_table])
        sequence = self.cur.fetchone()[0]
        # Ids in the order of each new customer's first order, so that inserting
        # orders by time mostly appends to the indexes on their customer.
        self.run(
            "new customers",
            """CREATE TEMP TABLE imp_newcust ON COMMIT DROP AS
            SELECT g.label, nextval(%(sequence)s::regclass) AS id, g.email, g.phone
            FROM (SELECT c.label, min(v.value) FILTER (WHERE v.kind = 'email') AS email,
                    min(v.value) FILTER (WHERE v.kind = 'phone') AS phone
                  FROM imp_cust c LEFT JOIN imp_val v USING (cust_key)
                  WHERE left(c.label, 1) = '1' GROUP BY c.label
                  ORDER BY min(c.first_at)) g""",
            {"sequence": sequence},
        )
        self.run(
            "customer map",
            """CREATE TEMP TABLE imp_map ON COMMIT DROP AS
            SELECT c.cust_key, n.id IS NULL AS known,
                coalesce(n.id, substr(c.label, 2)::bigint) AS customer
            FROM imp_cust c LEFT JOIN imp_newcust n ON n.label = c.label""",
        )

    @contextlib.contextmanager
    def trusted(self, wanted: bool | None) -> Iterator[bool]:
        """Insert without PostgreSQL's per-row foreign-key triggers when allowed.

        The triggers check each inserted row's references one by one (about 3 µs
        each, four per order line: half of the time for a large file). Every
        reference the merge writes is an id it has just read or inserted in this
        transaction, so instead it locks the referenced rows that already
        existed ``FOR KEY SHARE`` (what the triggers would lock), set-based,
        before the rows that point at them are inserted. Needs a role allowed to
        set ``session_replication_role`` and no user triggers on these tables
        (they would be skipped too); otherwise the triggers run as usual."""
        tables = [
            m._meta.db_table
            for m in (Customer, CustomerIdentity, ProductFamily, Product, Order, OrderLine)
        ]
        trusted = False
        if wanted is not False:
            # Granting SET on a parameter to a role came with PostgreSQL 15.
            granted = (
                "has_parameter_privilege('session_replication_role', 'SET')"
                if connection.pg_version >= 150000
                else "false"
            )
            self.cur.execute(
                sql.SQL(
                    """SELECT (current_setting('is_superuser') = 'on' OR {granted})
                    AND NOT EXISTS (SELECT 1 FROM pg_trigger
                        WHERE tgrelid = ANY(%s::regclass[]) AND NOT tgisinternal)"""
                ).format(granted=sql.SQL(granted)),
                [tables],
            )
            trusted = bool(self.cur.fetchone()[0])
        self.result.references = "set-based locks" if trusted else "row triggers"
        if trusted:
            self.run("references", "SELECT set_config('session_replication_role', 'replica', true)")
            self.lock(
                sql.SQL("SELECT 1 FROM {} WHERE id = %(t)s").format(
                    sql.Identifier(Tenant._meta.db_table)
                )
            )
            locked = self.lock(
                _sql(
                    """SELECT 1 FROM {customer} WHERE tenant_id = %(t)s
                    AND id IN (SELECT customer FROM imp_map WHERE known)"""
                )
            )
            self.cur.execute("SELECT count(DISTINCT customer) FROM imp_map WHERE known")
            if locked != self.cur.fetchone()[0]:
                raise ImportFileError(
                    "A customer this file matches was deleted during the import; run it again."
                )
        yield trusted
        # Not reached after an error: rolling back undoes the setting anyway.
        if trusted:
            self.run("references", "SELECT set_config('session_replication_role', 'origin', true)")

    def lock(self, rows: sql.Composable) -> int:
        """Lock ``rows`` as a foreign-key check would (``FOR KEY SHARE``); returns
        how many were locked."""
        self.run(
            "references",
            sql.SQL("SELECT count(*) FROM ({} FOR KEY SHARE) AS locked").format(rows),
        )
        return self.cur.fetchone()[0]

    def insert_customers(self) -> None:
        cols, vals, defaults = _model_defaults(Customer, skip=["tenant_id", "email", "phone"])
        self.result.customers_created = self.run(
            "customers",
            _sql(
                """INSERT INTO {customer} (id, tenant_id, email, phone, {cols})
                SELECT id, %(t)s, coalesce(email, ''), coalesce(phone, ''), {vals}
                FROM imp_newcust ORDER BY id""",
                cols=cols,
                vals=vals,
            ),
            defaults,
        )
        external = sql.SQL(
            "SELECT customer, 'external', %(s)s, cust_key FROM imp_map UNION ALL "
            if self.form.external_ids
            else ""
        )
        wanted = _sql(
            """SELECT x.kind, x.source, x.value, min(x.customer) AS customer FROM (
                {external} SELECT m.customer, v.kind, '', v.value
                FROM imp_val v JOIN imp_map m USING (cust_key)
            ) AS x (customer, kind, source, value) GROUP BY x.kind, x.source, x.value""",
            external=external,
        )
        # Inserted in the unique index's order (byte order is a C.UTF-8 database's
        # order, and close to others'): 15% faster than in hash order.
        self.result.identities_created = self.insert_missing(
            "identities",
            fast=[
                _sql(
                    """INSERT INTO {identity} (tenant_id, customer_id, kind, source, value,
                        created_at)
                    SELECT %(t)s, w.customer, w.kind, w.source, w.value, %(now)s
                    FROM ({wanted}) w
                    WHERE NOT EXISTS (SELECT 1 FROM {identity} i WHERE i.tenant_id = %(t)s
                        AND i.kind = w.kind AND i.source = w.source AND i.value = w.value)
                    ORDER BY w.kind, w.source, w.value COLLATE "C"
                    """,
                    wanted=wanted,
                )
            ],
            safe=[
                _sql(
                    """INSERT INTO {identity} (tenant_id, customer_id, kind, source, value,
                        created_at)
                    SELECT %(t)s, w.customer, w.kind, w.source, w.value, %(now)s
                    FROM ({wanted}) w
                    ON CONFLICT (tenant_id, kind, source, value) DO NOTHING""",
                    wanted=wanted,
                )
            ],
        )

    def insert_missing(
        self, label: str, *, fast: list, safe: list, extra: dict | None = None
    ) -> int:
        """Run the ``fast`` statements (they skip existing rows by an anti-join:
        a plain INSERT is twice as fast as ``ON CONFLICT DO NOTHING`` here) in a
        savepoint; if a concurrent writer inserted one of the same keys in the
        meantime, run the ``safe`` ones instead. Returns the last one's row count."""
        self.cur.execute("SAVEPOINT import_orders_fast")
        try:
            inserted = [self.run(label, statement, extra) for statement in fast][-1]
        except psycopg.errors.UniqueViolation:
            self.cur.execute("ROLLBACK TO SAVEPOINT import_orders_fast")
            inserted = [self.run(label, statement, extra) for statement in safe][-1]
        self.cur.execute("RELEASE SAVEPOINT import_orders_fast")
        return inserted

    def insert_catalogue(self, trusted: bool) -> None:
        """Product families by slug and products by sku, where missing."""
        self.run(
            "skus staged",
            """CREATE TEMP TABLE imp_sku ON COMMIT DROP AS
            SELECT sku, family_slug, min(family_name) AS family_name,
                max(unit_price) AS price, min(name) AS name
            FROM imp_stage WHERE sku <> '' OR family_slug <> '' GROUP BY sku, family_slug""",
        )
        cols, vals, defaults = _model_defaults(ProductFamily, skip=["tenant_id", "name", "slug"])
        self.result.families_created = self.run(
            "families",
            _sql(
                """INSERT INTO {family} (tenant_id, name, slug, {cols})
                SELECT %(t)s, min(family_name), family_slug, {vals} FROM imp_sku
                WHERE family_slug <> '' GROUP BY family_slug ORDER BY family_slug
                ON CONFLICT (tenant_id, slug) DO NOTHING""",
                cols=cols,
                vals=vals,
            ),
            defaults,
        )
        if trusted:
            self.lock(
                _sql(
                    """SELECT 1 FROM {family} WHERE tenant_id = %(t)s
                    AND slug IN (SELECT family_slug FROM imp_sku)"""
                )
            )
        cols, vals, defaults = _model_defaults(
            Product, skip=["tenant_id", "sku", "name", "family_id", "price"]
        )
        self.result.products_created = self.run(
            "products",
            _sql(
                """INSERT INTO {product} (tenant_id, sku, name, family_id, price, {cols})
                SELECT %(t)s, p.sku, coalesce(p.name, p.sku), f.id, p.price, {vals}
                FROM (SELECT sku, min(name) AS name, max(price) AS price,
                        min(nullif(family_slug, '')) AS family_slug
                      FROM imp_sku WHERE sku <> '' GROUP BY sku) p
                LEFT JOIN {family} f ON f.tenant_id = %(t)s AND f.slug = p.family_slug
                ORDER BY p.sku
                ON CONFLICT (tenant_id, sku) DO NOTHING""",
                cols=cols,
                vals=vals,
            ),
            defaults,
        )
        if trusted:
            # Lines point at these products and at their families.
            self.lock(
                _sql(
                    """SELECT 1 FROM {product} WHERE tenant_id = %(t)s
                    AND sku IN (SELECT sku FROM imp_sku)"""
                )
            )
            self.lock(
                _sql(
                    """SELECT 1 FROM {family} WHERE tenant_id = %(t)s AND id IN (
                        SELECT family_id FROM {product} WHERE tenant_id = %(t)s
                        AND sku IN (SELECT sku FROM imp_sku))"""
                )
            )

    def insert_orders_and_lines(self) -> None:
        """Orders missing for the tenant and source; lines only for the orders
        this run created, which is what makes a re-run add nothing."""
        cols, vals, defaults = _model_defaults(
            Order,
            skip=[
                "tenant_id", "customer_id", "source", "external_id", "number", "status",
                "currency", "subtotal", "discount_total", "shipping_total", "tax_total",
                "total", "placed_at", "cancelled_at",
            ],
        )  # fmt: skip
        columns = _sql(
            """tenant_id, customer_id, source, external_id, number, status, currency, subtotal,
            discount_total, shipping_total, tax_total, total, placed_at, cancelled_at, {cols}""",
            cols=cols,
        )
        values = _sql(
            """%(t)s, m.customer, %(s)s, o.order_id,
            coalesce(o.number, CASE WHEN length(o.order_id) <= 50 THEN o.order_id ELSE '' END),
            coalesce(o.status, %(status)s), coalesce(o.currency, %(currency)s),
            coalesce(o.subtotal, o.lines_total), coalesce(o.discount_total, 0),
            coalesce(o.shipping_total, 0), coalesce(o.tax_total, 0),
            coalesce(o.order_total, o.lines_total), o.placed_at, o.cancelled_at, {vals}""",
            vals=vals,
        )
        self.cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Order._meta.db_table])
        params = {
            **defaults,
            "status": Order._meta.get_field("status").get_default(),
            "sequence": self.cur.fetchone()[0],
        }
        # Orders get their ids here, in the order they were placed, so the lines
        # can point at them without reading them back.
        self.result.orders_created = self.insert_missing(
            "orders",
            fast=[
                _sql(
                    """CREATE TEMP TABLE imp_created ON COMMIT DROP AS
                    SELECT nextval(%(sequence)s::regclass) AS id, n.order_id
                    FROM (SELECT o.order_id FROM imp_order o
                        WHERE NOT EXISTS (SELECT 1 FROM {order} e WHERE e.tenant_id = %(t)s
                            AND e.source = %(s)s AND e.external_id = o.order_id)
                        ORDER BY o.placed_at) n"""
                ),
                _sql(
                    """INSERT INTO {order} (id, {columns})
                    SELECT c.id, {values} FROM imp_created c
                    JOIN imp_order o USING (order_id) JOIN imp_map m USING (cust_key)
                    ORDER BY c.id""",
                    columns=columns,
                    values=values,
                ),
            ],
            safe=[
                "CREATE TEMP TABLE imp_created (id bigint, order_id text) ON COMMIT DROP",
                _sql(
                    """WITH created AS (
                        INSERT INTO {order} ({columns})
                        SELECT {values} FROM imp_order o JOIN imp_map m USING (cust_key)
                        ORDER BY o.placed_at
                        ON CONFLICT (tenant_id, source, external_id) DO NOTHING
                        RETURNING id, external_id)
                    INSERT INTO imp_created SELECT id, external_id FROM created""",
                    columns=columns,
                    values=values,
                ),
            ],
            extra=params,
        )
        self.result.lines_created = self.result.rows_imported = self.run(
            "lines",
            _sql(
                """INSERT INTO {line} (tenant_id, order_id, product_id, family_id, sku, name,
                    quantity, unit_price, discount, total, price_tier)
                SELECT %(t)s, c.id, p.id, coalesce(p.family_id, f.id), s.sku,
                    coalesce(s.name, ''), s.quantity, s.unit_price, coalesce(s.line_discount, 0),
                    greatest(s.quantity * s.unit_price - coalesce(s.line_discount, 0), 0),
                    coalesce(p.price_tier, %(tier)s)
                FROM imp_stage s JOIN imp_created c ON c.order_id = s.order_id
                LEFT JOIN {product} p ON p.tenant_id = %(t)s AND p.sku = s.sku AND s.sku <> ''
                LEFT JOIN {family} f ON f.tenant_id = %(t)s AND f.slug = s.family_slug
                    AND s.family_slug <> ''"""
            ),
            {"tier": OrderLine._meta.get_field("price_tier").get_default()},
        )
