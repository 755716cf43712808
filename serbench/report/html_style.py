"""The page's inline stylesheet and script: light, dark and print; sorting and expanding rows."""

CSS = """
:root{--fg:#1d232a;--muted:#56616c;--bg:#fff;--panel:#f4f6f8;--line:#dde3e8;--link:#1f5fa8;
--accent:#1f5fa8;--best:#b8860b;--nw:#2e7d4f;--other:#7b8794;--pos:#2e7d4f;--neg:#c0392b;
--ref:#8e44ad;--heat:#1f5fa8;--miss:#c0392b;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e3e8ee;--muted:#9aa5b1;--bg:#14181c;
--panel:#1e242a;--line:#2f3740;--link:#7fb3ff;--accent:#7fb3ff;--best:#f0c24b;--nw:#5fd08f;
--other:#8d99a6;--pos:#5fd08f;--neg:#ff7b6b;--ref:#d39bff;--heat:#5d9cff;--miss:#ff7b6b}}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;
max-width:100rem;padding:0 1rem;color:var(--fg);background:var(--bg)}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}
h3{font-size:1rem;margin:1.5rem 0 .25rem}
.meta,.legend,.signature{color:var(--muted);font-size:.85rem}
.signature{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.75rem}
.sigblock{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.15rem 1.2rem;
margin:.5rem 0 1rem;padding:.5rem .9rem;background:var(--panel);border-radius:6px;
font-size:.8rem}
.sigblock div{display:flex;gap:.6rem}.sigblock .wide{grid-column:1/-1}
.sigblock dt{color:var(--muted);min-width:5.5rem}
.sigblock dd{margin:0;font-family:ui-monospace,Menlo,monospace}
.sigblock ul{margin:.2rem 0;padding-left:1.2rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse}
table.board{width:100%;font-size:.86rem}
th,td{padding:.3rem .35rem;border-bottom:1px solid var(--line);text-align:right;
vertical-align:middle;white-space:nowrap}
table.board td.name,table.board th:nth-child(2){text-align:left}
table.board td.name{white-space:normal;min-width:15rem}
table.board thead th{cursor:pointer;user-select:none;background:var(--panel);
vertical-align:bottom;position:sticky;top:0;white-space:normal;min-width:3rem;
font-size:.82rem}
table.board th:focus-visible,button:focus-visible,a:focus-visible,summary:focus-visible{
outline:2px solid var(--accent);outline-offset:1px}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr.best td{font-weight:700}.mark{color:var(--nw)}
td.chart{padding:0 .3rem}
svg{display:block;overflow:visible}
svg text{fill:var(--muted);font-size:10px}svg.axis line{stroke:var(--muted)}
svg .grid{stroke:var(--line)}svg .ci{stroke-width:2.5;stroke-linecap:round}
svg.best .ci,svg.best .pt{stroke:var(--best);fill:var(--best)}
svg.nw .ci,svg.nw .pt{stroke:var(--nw);fill:var(--nw)}
svg.other .ci,svg.other .pt{stroke:var(--other);fill:var(--other)}
svg .ref{fill:none;stroke:var(--ref);stroke-width:1.5}
.ref small{color:var(--muted)}
button.expand{font:inherit;color:var(--link);background:none;border:0;padding:0;cursor:pointer;
text-align:left}
button.expand::before{content:"\\25B8\\00a0";color:var(--muted)}
button.expand[aria-expanded=true]::before{content:"\\25BE\\00a0"}
tr.detail>td{background:var(--panel);text-align:left;white-space:normal;padding:.8rem}
.detail-grid{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
.detail-grid .runs-box{max-height:22rem;overflow-y:auto}
caption{text-align:left;color:var(--muted);font-size:.8rem;padding-bottom:.2rem;
caption-side:top}
table.confusion td.heat{min-width:3.2rem;
background:color-mix(in srgb,var(--heat) calc(var(--v)*85%),transparent)}
table.confusion td.miss{background:color-mix(in srgb,var(--miss) calc(var(--v)*85%),transparent)}
table.confusion td,table.confusion th,table.speakers td,table.speakers th,table.runs td,
table.runs th{padding:.15rem .4rem;font-size:.8rem}
table.speakers td.bar{width:12rem}
table.speakers td.bar span{display:block;height:.7rem;background:var(--accent);border-radius:2px}
table.runs td:last-child{font-family:ui-monospace,Menlo,monospace;font-size:.8rem}
table.matrix th,table.matrix td{padding:.2rem .35rem;font-size:.78rem;text-align:center;
border:1px solid var(--line)}
table.matrix tbody th{text-align:left;font-weight:400}
table.matrix .num{color:var(--muted);display:inline-block;min-width:1.6rem}
table.matrix td.pos{background:color-mix(in srgb,var(--pos) 60%,transparent)}
table.matrix td.neg{background:color-mix(in srgb,var(--neg) 60%,transparent)}
table.matrix td.npos,table.matrix td.nneg{background:color-mix(in srgb,var(--other) 15%,
transparent)}
table.matrix td.untested{background:repeating-linear-gradient(45deg,transparent 0 3px,
var(--line) 3px 5px)}
table.matrix td.void{border:0}
.key{display:inline-block;width:.9rem;height:.9rem;vertical-align:-2px;margin-left:.6rem;
border:1px solid var(--line)}
.key.pos{background:color-mix(in srgb,var(--pos) 60%,transparent)}
.key.neg{background:color-mix(in srgb,var(--neg) 60%,transparent)}
.key.npos{background:color-mix(in srgb,var(--other) 15%,transparent)}
.key.untested{background:repeating-linear-gradient(45deg,transparent 0 3px,var(--line) 3px 5px)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
a{color:var(--link)}nav ul{padding-left:1.2rem}
@media print{body{margin:0;max-width:none;font-size:10pt}.scroll{overflow:visible}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
table.board thead th{position:static}button.expand::before{content:""}
section{break-before:page}section:first-of-type{break-before:auto}
tr{break-inside:avoid}a{color:inherit;text-decoration:none}nav{display:none}}
"""

JS = """
(function () {
  "use strict";
  function value(row, col, numeric) {
    var raw = row.cells[col].getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    return numeric ? parseFloat(raw) : raw.toLowerCase();
  }
  function detailOf(row) {
    var b = row.querySelector("button.expand");
    return b ? document.getElementById(b.getAttribute("aria-controls")) : null;
  }
  function sortTable(table, col) {
    var heads = table.tHead.rows[0].cells;
    var th = heads[col];
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "ascending" ? "descending" : "ascending")
                      : (th.getAttribute("data-first") || "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (r) {
      return !r.classList.contains("detail");
    });
    rows.sort(function (a, b) {
      var x = value(a, col, numeric), y = value(b, col, numeric);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) {
      var d = detailOf(r);
      body.appendChild(r);
      if (d) { body.appendChild(d); }
    });
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, col); }
      });
    });
    Array.prototype.forEach.call(table.querySelectorAll("button.expand"), function (b) {
      b.addEventListener("click", function () {
        var open = b.getAttribute("aria-expanded") !== "true";
        b.setAttribute("aria-expanded", open ? "true" : "false");
        document.getElementById(b.getAttribute("aria-controls")).hidden = !open;
      });
    });
  });
}());
"""
