"""How the results tables are written out: numbers with the metric's decimals, Markdown, LaTeX
and sortable HTML."""
from __future__ import annotations

import html
import math

import pandas as pd

from cmkd.metrics import METRICS


def fmt(mean: float, std: float, metric: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    d = METRICS[metric].decimals if metric in METRICS else 2
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{d}f}"
    return f"{mean:.{d}f} ± {std:.{d}f}"


def _pub(v: float, r) -> str:
    """A published number with its metric's decimals (:data:`cmkd.metrics.METRICS`; 3 for RMSE), marked
    when its scale is unknown (not compared)."""
    m = r.get("metric")
    txt = f"{v:.{METRICS[m].decimals if m in METRICS else 2}f}"
    return txt + (" (scale unknown)" if r.get("published_scale") == "unknown" else "")


def to_markdown(df: pd.DataFrame, title: str, note: str, power: str = "") -> str:
    lines = [f"# {title}", "", note, ""]
    cols = ["dataset", "track", "dimension", "label", "reproduced", "chance", "majority", "sig", "published", "diff", "n"]
    for extra in ("sig_trials", "sig_seeds"):
        if extra in df.columns:
            cols.insert(cols.index("sig") + 1, extra)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, r in df.iterrows():
        vals = []
        for c in cols:
            v = r.get(c, math.nan)
            if c in ("chance", "majority"):
                v = _num(v)
            elif c in ("published", "diff"):
                v = "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.2f}" if c == "diff" else _pub(v, r)
            vals.append(str(v))
        lines.append("| " + " | ".join(vals) + " |")
    if power:
        lines += ["", power]
    return "\n".join(lines) + "\n"


def _num(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.2f}"


def to_latex(df: pd.DataFrame, title: str, power: str = "") -> str:
    def esc(s):
        return str(s).replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")

    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(title)}}}", r"\begin{tabular}{lllrrrr}", r"\toprule",
             r"Dataset & Dimension & Method & Reproduced & Chance & Published & $\Delta$ \\", r"\midrule"]
    for _, r in df.iterrows():
        pub = "--" if r["published"] is None or (isinstance(r["published"], float) and math.isnan(r["published"])) else esc(_pub(r["published"], r))
        diff = "--" if isinstance(r["diff"], float) and math.isnan(r["diff"]) else f"{r['diff']:+.2f}"
        mark = {"*": "$^*$", "≈": r"$^{\approx}$"}.get(str(r.get("sig", "")), "")
        lines.append(f"{esc(r['dataset'])} & {esc(r['dimension'])} & {esc(r['label'])} & {esc(r['reproduced'])}{mark} & {_num(r.get('chance')).replace('–', '--')} & {pub} & {diff} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if power:
        lines.append(r"\par\smallskip\footnotesize " + esc(power).replace("≈", r"$\approx$"))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


_SORT_JS = """<script>
document.querySelectorAll('table.sortable th').forEach(function(th, i){
  th.style.cursor='pointer'; th.title='click to sort';
  th.addEventListener('click', function(){
    var t=th.closest('table'), b=t.tBodies[0], rows=Array.from(b.rows), asc=th.dataset.asc!=='1';
    rows.sort(function(a,c){var x=a.cells[i].dataset.v||a.cells[i].textContent, y=c.cells[i].dataset.v||c.cells[i].textContent;
      var fx=parseFloat(x), fy=parseFloat(y); var r=(!isNaN(fx)&&!isNaN(fy))?fx-fy:x.localeCompare(y); return asc?r:-r;});
    rows.forEach(function(r){b.appendChild(r);}); th.dataset.asc=asc?'1':'0';});
});
</script>"""


def to_html(df: pd.DataFrame, title: str, note: str) -> str:
    cols = [("dataset", "Dataset"), ("track", "Track"), ("dimension", "Dimension"), ("label", "Method"), ("reproduced", "Reproduced (mean ± std)"),
            ("chance", "Chance (binomial, α = 0.05)"), ("majority", "Majority class in test (%)"),
            ("sig", "Sig. vs reference (method-level)"), ("sig_seeds", "Sig. vs reference (corrected resampled t)"),
            ("sig_trials", "Trained models differ on these trials"), ("reference", "Reference"),
        ("published", "Published"), ("diff", "Δ (reproduced − published)"), ("n", "Seeds"), ("published_source", "Published source")]
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px}"
           "th{background:#eee}td.num{text-align:right}.note{color:#555;max-width:60em}</style></head><body>",
           f"<h2>{html.escape(title)}</h2>", f"<p class='note'>{html.escape(note)}</p>",
           ]
    cols = [(c, h) for c, h in cols if c in df.columns]   # the header names the columns the rows have
    out.append("<table class='sortable'><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for _, h in cols)
               + "</tr></thead><tbody>")
    for _, r in df.iterrows():
        cells = []
        for c, _ in cols:
            v = r[c]
            sortv = ""
            if c == "reproduced":
                sortv = "" if math.isnan(r["mean"]) else f"{r['mean']:.6f}"
                txt = str(v)
            elif c in ("published", "diff", "chance", "majority"):
                isnan = v is None or (isinstance(v, float) and math.isnan(v))
                txt = "–" if isnan else (f"{v:+.2f}" if c == "diff" else _pub(v, r))
                sortv = "" if isnan else f"{v:.6f}"
            else:
                txt = str(v)
            cls = " class='num'" if c in ("reproduced", "chance", "majority", "published", "diff", "n") else ""
            dv = f" data-v='{sortv}'" if sortv else ""
            cells.append(f"<td{cls}{dv}>{html.escape(txt)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out.append(_SORT_JS)
    out.append("</body></html>")
    return "\n".join(out) + "\n"
