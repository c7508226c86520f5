"""The template language of messages: which variables exist, a Django template
engine cut down to what is safe in a message, and a checker that finds unknown
variables in a compiled template. Pure: no database.

The engine has no loaders and no ``{% load %}``-able libraries, and only the
builtin tags and filters listed here (``{% if %}``, ``{% for %}``, ``{% with %}``,
``|default``, ``|date`` …; never ``{% include %}``, ``{% extends %}``,
``{% load %}``, ``{% autoescape off %}`` or ``|safe``). Rendering and saving are
in ``messaging.services.templates``.

A template is written by a marketer but rendered in web requests and in the
send path, so its cost is bounded by its own text: blocks nest at most
``MAX_DEPTH`` deep, loops go over a list variable and never nest (the work is
then linear in the template and the data), and the filters and tags that pad
or generate text take a small literal count. These structural limits are
checked on save *and* before every render (a template stored some other way
cannot get round them), and a rendered part longer than ``MAX_OUTPUT`` is
refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.template import (
    Context,
    Engine,
    Library,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template import Template as CompiledTemplate
from django.template.base import FilterExpression, NodeList, Variable, VariableNode
from django.template.defaulttags import (
    CycleNode,
    FilterNode,
    FirstOfNode,
    ForNode,
    IfChangedNode,
    IfNode,
    LoremNode,
    NowNode,
    TemplateLiteral,
    WidthRatioNode,
    WithNode,
)
from django.utils import timezone
from django.utils.dateformat import format as date_format

from retention import clock

# --- the variables ----------------------------------------------------------------------


@dataclass(frozen=True)
class Seq:
    """A list whose items have the shape ``item`` (a loop variable gets it)."""

    item: dict[str, Any]


# A shape is a dict (a group: attribute -> shape), a Seq, or None (a plain value).
ITEM = dict.fromkeys(["name", "sku", "quantity"])
VARIABLES: dict[str, dict[str, Any]] = {
    "customer": dict.fromkeys(["first_name", "last_name", "full_name", "email", "phone", "locale"]),
    "order": {
        **dict.fromkeys(["number", "total", "currency", "placed_at", "status_url"]),
        "items": Seq(ITEM),
    },
    "product": dict.fromkeys(["name", "sku", "price", "family"]),
    "cart": {**dict.fromkeys(["total", "currency", "url"]), "items": Seq(ITEM)},
    "store": {"name": None},
    # links.survey is the post-delivery survey's link (/s/<token>/): only a
    # message that carries a survey invitation has it (the sender passes
    # extra={"links": {"survey": url}}); anywhere else it prints nothing.
    "links": dict.fromkeys(["preferences", "unsubscribe", "order_status", "survey"]),
}
FORLOOP: dict[str, Any] = dict.fromkeys(
    ["counter", "counter0", "revcounter", "revcounter0", "first", "last"]
)
FORLOOP["parentloop"] = FORLOOP


def template_variables() -> dict[str, list[str]]:
    """The documented variables, group -> attributes (``order.items`` lists
    what each item of the loop has)."""
    out: dict[str, list[str]] = {}
    for root, attributes in VARIABLES.items():
        out[root] = list(attributes)
        for name, shape in attributes.items():
            if isinstance(shape, Seq):
                out[f"{root}.{name}"] = list(shape.item)
    return out


# --- the engine -------------------------------------------------------------------------

ALLOWED_TAGS = frozenset(
    {
        "if", "for", "with", "firstof", "cycle", "resetcycle", "ifchanged", "filter",
        "spaceless", "comment", "verbatim", "templatetag", "widthratio", "now", "lorem",
    }
)  # fmt: skip
# Why each refused tag is refused, for the marketer reading the error.
REFUSED_TAGS = {
    "include": "templates stand alone and cannot include others",
    "extends": "templates stand alone and cannot extend others",
    "block": "templates stand alone and have no blocks",
    "load": "only the built-in tags and filters are available",
    "autoescape": "HTML is always escaped",
    "debug": "it would reveal internals",
    "url": "use the links variables instead",
    "csrf_token": "messages are not forms",
    "regroup": "it is not available in message templates",
    "querystring": "messages have no request",
}
# |safe would let a shopper's own data (a name) put markup into an email.
REFUSED_FILTERS = frozenset({"safe", "safeseq", "pprint"})
# Limits that keep rendering cheap (see the module docstring).
MAX_DEPTH = 20
MAX_WIDTH = 500  # |ljust:"N", |stringformat:"Ns", |floatformat:N …
MAX_LOREM = 50
MAX_OUTPUT = 500_000  # characters in one rendered part (Gmail clips HTML at ~100 KB)
TOO_DEEP = f"Tags are nested more than {MAX_DEPTH} deep; simplify the template."
# Filters whose numeric argument sets how much text they make.
WIDTH_FILTERS = frozenset({"ljust", "rjust", "center", "stringformat", "floatformat"})
# Filters that keep a list a list, and those that take one item of it.
LIST_FILTERS = frozenset({"slice", "dictsort", "dictsortreversed"})
ITEM_FILTERS = frozenset({"first", "last", "random"})


class _ClockNowNode(NowNode):
    """``{% now %}`` reading the project's clock (``retention.clock``), not the
    wall clock, so a message rendered in a test or the simulator shows its day."""

    def render(self, context: Context) -> str:
        formatted = date_format(timezone.localtime(clock.now()), self.format_string)
        if self.asvar:
            context[self.asvar] = formatted
            return ""
        return formatted


def _now_tag(parser: Any, token: Any) -> _ClockNowNode:
    node = defaulttags.now(parser, token)
    return _ClockNowNode(node.format_string, node.asvar)


def _library() -> Library:
    library = Library()
    library.tags = {k: v for k, v in defaulttags.register.tags.items() if k in ALLOWED_TAGS}
    library.tags["now"] = _now_tag
    library.filters = {
        k: v for k, v in defaultfilters.register.filters.items() if k not in REFUSED_FILTERS
    }
    return library


class _MessageEngine(Engine):
    # Django's defaults add loader_tags ({% include %}, {% extends %}); ours replace them.
    default_builtins: list[str] = []

    def __init__(self) -> None:
        super().__init__(loaders=[], libraries={}, string_if_invalid="", autoescape=True)
        self.template_builtins = [_library()]


_ENGINE = _MessageEngine()


@lru_cache(maxsize=512)
def _compile(source: str) -> CompiledTemplate:
    return _ENGINE.from_string(source)


# --- checking ---------------------------------------------------------------------------


class UnsafeTemplate(TemplateSyntaxError):
    """A template over the limits that keep rendering cheap; its message says
    which one, for the marketer."""


def syntax_message(exc: TemplateSyntaxError) -> str:
    if isinstance(exc, UnsafeTemplate):
        return str(exc)
    token = getattr(exc, "token", None)
    line = getattr(token, "lineno", None)
    where = f" (line {line})" if line else ""
    text = str(exc)
    if text.startswith("Invalid block tag") and token is not None:
        command = token.contents.split()[0] if token.contents.split() else ""
        if command in REFUSED_TAGS:
            return f"{{% {command} %}} is not allowed{where}: {REFUSED_TAGS[command]}."
        return f"Unknown tag {{% {command} %}}{where}."
    if text.startswith("Invalid filter: '"):
        name = text.split("'")[1]
        if name in REFUSED_FILTERS:
            return f"The filter |{name} is not allowed{where}: customer data is always escaped."
        return f"Unknown filter |{name}{where}."
    if line:
        # Some of Django's messages name the line already: name it once, first.
        return f"Syntax error on line {line}: {text.replace(f' on line {line}', '')}"
    return f"Syntax error: {text}"


class _Checker:
    """Walks a compiled template and notes every variable it cannot know.

    Scopes follow Django's: loop and ``with`` names exist inside their block,
    ``as`` names from the tag on within the enclosing block."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        # The subset of errors that break the limits on what rendering may cost.
        self.unsafe: list[str] = []
        self.depth = 0
        self.loops = 0

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def limit(self, message: str) -> None:
        self.error(message)
        if message not in self.unsafe:
            self.unsafe.append(message)

    def nodes(self, nodelist: NodeList | None, scope: dict[str, Any]) -> None:
        if not nodelist:
            return
        if self.depth > MAX_DEPTH:
            self.limit(TOO_DEEP)
            return
        scope = dict(scope)
        self.depth += 1
        try:
            for node in nodelist:
                self.node(node, scope)
        finally:
            self.depth -= 1

    def node(self, node: Any, scope: dict[str, Any]) -> None:
        if isinstance(node, VariableNode):
            self.expr(node.filter_expression, scope, output=True)
        elif isinstance(node, ForNode):
            sequence = node.sequence
            if self.loops:
                self.limit("A {% for %} loop cannot be inside another loop.")
            if not isinstance(sequence.var, Variable) or sequence.var.lookups is None:
                self.limit(
                    "Loop over a list variable, e.g. {% for item in order.items %}, "
                    "not over a literal."
                )
            shape = self.expr(sequence, scope)
            inner = {**scope, "forloop": FORLOOP}
            single = len(node.loopvars) == 1 and isinstance(shape, Seq)
            for name in node.loopvars:
                inner[name] = shape.item if single else None
            self.loops += 1
            try:
                self.nodes(node.nodelist_loop, inner)
            finally:
                self.loops -= 1
            self.nodes(node.nodelist_empty, scope)
        elif isinstance(node, LoremNode):
            self.count(node.count, "{% lorem %}", MAX_LOREM, scope)
        elif isinstance(node, IfNode):
            for condition, nodelist in node.conditions_nodelists:
                if condition is not None:
                    self.condition(condition, scope)
                self.nodes(nodelist, scope)
        elif isinstance(node, WithNode):
            inner = dict(scope)
            for name, expression in node.extra_context.items():
                inner[name] = self.expr(expression, scope)
            self.nodes(node.nodelist, inner)
        elif isinstance(node, FilterNode):
            # {% filter lower %} compiles to "var|lower": only the arguments are ours.
            self.filter_args(node.filter_expr, scope)
            self.nodes(node.nodelist, scope)
        elif isinstance(node, IfChangedNode):
            for expression in node._varlist:
                self.expr(expression, scope)
            self.nodes(node.nodelist_true, scope)
            self.nodes(node.nodelist_false, scope)
        elif isinstance(node, CycleNode | FirstOfNode | WidthRatioNode | NowNode):
            for expression in _expressions(node):
                self.expr(expression, scope)
            name = getattr(node, "variable_name", None) or getattr(node, "asvar", None)
            if name:
                scope[name] = None
        else:
            for attr in node.child_nodelists:
                self.nodes(getattr(node, attr, None), scope)

    def condition(self, condition: Any, scope: dict[str, Any]) -> None:
        if isinstance(condition, TemplateLiteral):
            self.expr(condition.value, scope)
            return
        for part in (getattr(condition, "first", None), getattr(condition, "second", None)):
            if part is not None:
                self.condition(part, scope)

    def filter_args(self, expression: FilterExpression, scope: dict[str, Any]) -> None:
        for func, args in expression.filters:
            name = getattr(func, "_filter_name", "")
            for lookup, arg in args:
                if name in WIDTH_FILTERS:
                    self.count(arg, f"|{name}", MAX_WIDTH, scope)
                elif lookup:
                    self.variable(arg, scope)

    def count(self, arg: Any, what: str, most: int, scope: dict[str, Any]) -> None:
        """A literal count (or width, or format spec) of at most ``most``."""
        if isinstance(arg, FilterExpression):
            arg = arg.var
        if isinstance(arg, Variable):
            if arg.lookups is not None:
                self.variable(arg, scope)
                self.limit(f"{what} takes a number written in the template, not a variable.")
                return
            arg = arg.literal
        if any(int(digits) > most for digits in re.findall(r"\d+", str(arg))):
            self.limit(f"{what} allows numbers up to {most}.")

    def expr(self, expression: Any, scope: dict[str, Any], *, output: bool = False) -> Any:
        """Check an expression and return the shape of its value."""
        if not isinstance(expression, FilterExpression):
            return None
        var = expression.var
        literal = not isinstance(var, Variable) or var.lookups is None
        shape = None if literal else self.variable(var, scope)
        self.filter_args(expression, scope)
        if literal:
            return None
        names = [getattr(func, "_filter_name", "") for func, _ in expression.filters]
        for name in names:
            if isinstance(shape, Seq) and name in ITEM_FILTERS:
                shape = shape.item
            elif not (isinstance(shape, Seq) and name in LIST_FILTERS):
                shape = None
        if output and isinstance(shape, dict):
            first = next(iter(shape), "")
            self.error(
                f"'{var.var}' is a group: use one of its attributes, e.g. '{var.var}.{first}'."
            )
        elif output and isinstance(shape, Seq):
            self.error(f"'{var.var}' is a list: loop over it with {{% for item in {var.var} %}}.")
        return shape

    def variable(self, var: Variable, scope: dict[str, Any]) -> Any:
        if var.lookups is None:
            return None
        root, *rest = var.lookups
        if root not in scope:
            self.error(f"Unknown variable '{var.var}'.")
            return None
        shape = scope[root]
        for bit in rest:
            if isinstance(shape, dict) and bit in shape:
                shape = shape[bit]
            elif isinstance(shape, Seq) and bit.isdigit():
                shape = shape.item
            else:
                self.error(f"Unknown variable '{var.var}'.")
                return None
        return shape


def _expressions(node: Any) -> list[FilterExpression]:
    if isinstance(node, CycleNode):
        return list(node.cyclevars)
    if isinstance(node, FirstOfNode):
        return list(node.vars)
    if isinstance(node, WidthRatioNode):
        return [node.val_expr, node.max_expr, node.max_width]
    return []


def check_source(source: str) -> list[str]:
    """What is wrong with a template's source, as messages for people: a syntax
    error with its line, a refused tag or filter, or unknown variables."""
    if not source:
        return []
    return list(_checked(source)[0])


@lru_cache(maxsize=512)
def _checked(source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every error, the errors that break the rendering limits) of a source."""
    try:
        compiled = _compile(source)
    except TemplateSyntaxError as exc:
        return (syntax_message(exc),), ()  # render_source raises it again, as it is
    except RecursionError:  # Django's parser recurses once per nested block
        return (TOO_DEEP,), (TOO_DEEP,)
    checker = _Checker()
    checker.nodes(compiled.nodelist, dict(VARIABLES))
    return tuple(checker.errors), tuple(checker.unsafe)


def render_source(source: str, values: dict[str, Any], *, autoescape: bool) -> str:
    """Render a template's source with a context of plain values. Raises
    TemplateSyntaxError for a broken template, :class:`UnsafeTemplate` for one
    over the rendering limits (checked here too, not only on save)."""
    if not source:
        return ""
    unsafe = _checked(source)[1]
    if unsafe:
        raise UnsafeTemplate(unsafe[0])
    # A copy on top: tags that set a name ({% firstof … as x %}, {% now … as x %})
    # write into the context's top mapping, and the values may be read-only.
    text = _compile(source).render(Context(dict(values), autoescape=autoescape))
    if len(text) > MAX_OUTPUT:
        raise UnsafeTemplate(f"The rendered message is longer than {MAX_OUTPUT} characters.")
    return text
