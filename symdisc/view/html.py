"""A run's page: one HTML file with the run's data as JSON and the page's own CSS and JavaScript
(assets/, shipped in the package) inlined, so a report opens offline from disk with no server.

The charts are SVG drawn by assets/report.js (a few hundred lines of vanilla JavaScript, no
library): the same script draws the saved report and the live page of `symdisc ui`, which fetches
the run's JSON again while the run is running and redraws.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Optional

from symdisc.view.report import data_json


def asset(name: str) -> str:
    return resources.files("symdisc.view").joinpath("assets", name).read_text(encoding="utf-8")


def _script_safe(text: str) -> str:
    # JSON inside <script>: "</" would close the element and "<!--" would start a comment.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def page(data: dict, live_url: Optional[str] = None, home_url: Optional[str] = None) -> str:
    """The page of one run. ``live_url``: where the page fetches fresh data while the run is running."""
    run = data["run"]
    options = {"live_url": live_url, "home_url": home_url}
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>symdisc run {html.escape(run['id'])}</title>"
        f"<style>{asset('report.css')}</style></head>\n<body data-ready=\"0\">"
        "<div id=\"js-errors\" class=\"errors\"></div>"
        "<noscript>This page draws itself with JavaScript; the raw data is in the script element "
        "with id run-data.</noscript><div id=\"app\"></div>\n"
        f"<script id=\"run-data\" type=\"application/json\">{_script_safe(data_json(data))}</script>\n"
        f"<script id=\"page-options\" type=\"application/json\">{_script_safe(data_json(options))}</script>\n"
        f"<script>{_script_safe_js(asset('report.js'))}</script>\n</body></html>\n"
    )


def _script_safe_js(text: str) -> str:
    if "</script" in text.lower():
        raise ValueError("report.js must not contain a closing script tag")
    return text


def index_page(runs: list[dict]) -> str:
    """The list of runs that `symdisc ui` shows at /."""
    rows = []
    for r in runs:
        best = f"{r['best_fitness']:.4f}" if r.get("best_fitness") is not None else ""
        held = f"{r['best_heldout']:.4f}" if r.get("best_heldout") is not None else ""
        rid = html.escape(r["id"])
        rows.append(f"<tr class=\"run-row\"><td><a href=\"/run/{rid}\">{rid}</a></td><td>{html.escape(r['kind'])}</td>"
                    f"<td class=\"status-{html.escape(r['status'])}\">{html.escape(r['status'])}</td>"
                    f"<td>{html.escape((r.get('model') or '')[-40:])}</td><td class=\"num\">{r['candidates']}</td>"
                    f"<td class=\"num\">{held}</td><td class=\"num\">{best}</td>"
                    f"<td>{html.escape(r['created_at'])}</td></tr>")
    body = "\n".join(rows) or "<tr><td colspan=\"8\">no runs yet: try <code>symdisc evolve</code></td></tr>"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>symdisc runs</title>"
        "<meta http-equiv=\"refresh\" content=\"10\">"
        f"<style>{asset('report.css')}</style></head><body data-ready=\"1\"><div id=\"app\">"
        "<h1>symdisc runs</h1><p class=\"muted\">Newest first; this list reloads every 10 s. A running run's page "
        "redraws itself as candidates arrive.</p>"
        "<table class=\"grid\"><thead><tr><th>run</th><th>kind</th><th>status</th><th>model</th><th>candidates</th>"
        "<th>best held-out</th><th>best proxy</th><th>created (UTC)</th></tr></thead><tbody>"
        f"{body}</tbody></table></div></body></html>\n"
    )
