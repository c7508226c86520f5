"""The results as plain text: what ``experiment_report`` prints (the page
shows the same numbers)."""

from __future__ import annotations


def _pct(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _num(value, kind: str) -> str:
    if value is None:
        return "n/a"
    return _pct(value) if kind == "rate" else f"{value:,.3f}"


def _signed(value, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.2f} pp" if kind == "rate" else f"{value:+,.3f}"


def _p(value) -> str:
    if value is None:
        return "n/a"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def metric_lines(metric: dict, *, detail: bool) -> list[str]:
    kind = metric["kind"]
    lines = [f"{metric['label']} (window {metric['window_days']} days)"]
    lines.append(f"  {'variant':<14}{'mature n':>10}{'maturing':>10}{'value':>11}   95% interval")
    for row in metric["variants"]:
        lines.append(
            f"  {row['key']:<14}{row['n']:>10,}{row['maturing']:>10,}"
            f"{_num(row['value'], kind):>11}   "
            f"[{_num(row['low'], kind)}, {_num(row['high'], kind)}]"
        )
    for lift in metric["lifts"]:
        lines.append(
            f"  {lift['key']} vs control: {_signed(lift['absolute'], kind)} "
            f"[{_signed(lift['absolute_low'], kind)}, {_signed(lift['absolute_high'], kind)}], "
            f"relative {_pct(lift['relative'])} "
            f"[{_pct(lift['relative_low'])}, {_pct(lift['relative_high'])}], "
            f"p = {_p(lift['p_value'])}"
            + (f" (Holm {_p(lift['p_adjusted'])})" if lift["p_adjusted"] != lift["p_value"] else "")
            + (" *" if lift["significant"] else "")
        )
        if detail:
            lines.append(f"    method: {lift['method']}")
    return lines


def report_lines(report: dict) -> list[str]:
    e = report["experiment"]
    lines = [
        f"Experiment {e['name']!r} ({e['kind']}) on journey {e['journey']!r}"
        + (f", step {e['step_position']}" if e["step_position"] else ""),
        f"Status: {e['status']}; started {e['started_at'] or '-'}; "
        f"planned end {e['planned_end'] or '-'}; as of {report['as_of']}",
        f"Hypothesis: {e['hypothesis']}",
        "",
        "Exposed: "
        + ", ".join(
            f"{v['key']}{' (control)' if v['is_control'] else ''} {v['exposed']:,} "
            f"(weight {v['weight']})"
            for v in report["variants"]
        ),
    ]
    srm = report["srm"]
    lines.append(
        f"Sample ratio: chi-square {srm['chi2'] or 0:.2f}, p = {_p(srm['p_value'])} - "
        + ("MISMATCH: the split does not follow the weights" if srm["mismatch"] else "ok")
    )
    design = report["design"]
    if design["needed_per_control_arm"]:
        lines.append(
            f"Design: {design['needed_per_control_arm']:,} mature customers in the control "
            f"(and {design['needed_per_treatment_arm']:,} per treatment) detect a "
            f"{_pct(design['minimum_effect'])} relative lift on a {_pct(design['baseline_rate'])} "
            f"baseline at {design['power']:.0%} power, alpha {design['alpha']}"
        )
    primary = metric_lines(report["primary"], detail=True)
    lines += ["", "Primary metric: " + primary[0], *primary[1:]]
    others = [m for m in report["metrics"] if m["metric"] != report["primary_metric"]]
    for metric in others:
        lines += ["", *metric_lines(metric, detail=False)]
    lines.append("")
    if report["peeking"]["early"]:
        lines.append("WARNING: " + report["peeking"]["message"])
    lines.append("Verdict: " + report["verdict"])
    return lines
