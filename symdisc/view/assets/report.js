/* symdisc run page: draws the run data embedded in #run-data (SVG charts, lineage tree, candidate
   table). Vanilla JavaScript, no library, so the saved report works offline from disk. Any error is
   written into #js-errors, where a user (and the browser tests) can see it. */
(function () {
  "use strict";
  var errBox = document.getElementById("js-errors");
  function reportError(msg) { errBox.textContent += msg + "\n"; }
  window.addEventListener("error", function (e) {
    reportError("error: " + e.message + " (" + (e.filename || "") + ":" + (e.lineno || "") + ")");
  });
  window.addEventListener("unhandledrejection", function (e) { reportError("unhandled rejection: " + e.reason); });

  var T_START = performance.now();
  var DATA = JSON.parse(document.getElementById("run-data").textContent);
  var T_PARSED = performance.now();
  var OPTS = JSON.parse(document.getElementById("page-options").textContent);
  var PAGE = 100, POLL_MS = 3000;
  var SVGNS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2563eb", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c",
                 "#4f46e5", "#0d9488", "#9333ea", "#b45309", "#be123c", "#15803d", "#1d4ed8", "#a16207"];
  var state = { selected: null, sortKey: "seq", sortDir: 1, query: "", page: 0 };
  var byId = {}, app = document.getElementById("app"), tip = null;

  // -- small helpers ---------------------------------------------------------------------------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "on") for (var ev in attrs.on) e.addEventListener(ev, attrs.on[ev]);
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c !== null && c !== undefined) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function sv(tag, attrs, kids) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in (attrs || {})) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "title") e.appendChild(sv("title", { text: attrs[k] }));
      else if (k === "on") for (var ev in attrs.on) e.addEventListener(ev, attrs.on[ev]);
      else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function fmt(v, d) { return v === null || v === undefined ? "" : (typeof v === "number" ? v.toFixed(d === undefined ? 4 : d) : String(v)); }
  function secs(s) {
    if (s === null || s === undefined) return "";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function colorOf(name, order) {
    if (name === "new") return "#16a34a";
    if (name === "repeat") return "#f59e0b";
    if (name === "pending") return "#98a2b3";
    var i = order.indexOf(name);
    var pal = PALETTE.slice(2);
    return pal[(i < 0 ? 0 : i) % pal.length];
  }
  function showTip(evt, text) {
    if (!tip) { tip = el("div", { "class": "tip" }); document.body.appendChild(tip); }
    tip.textContent = text; tip.style.display = "block";
    tip.style.left = (evt.clientX + 12) + "px"; tip.style.top = (evt.clientY + 12) + "px";
  }
  function hideTip() { if (tip) tip.style.display = "none"; }
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  // -- charts ----------------------------------------------------------------------------------
  function frame(w, h, xd, yd, xlabel, ylabel, m) {
    m = m || { l: 52, r: 14, t: 10, b: 36 };
    var svg = sv("svg", { viewBox: "0 0 " + w + " " + h, width: w, height: h, role: "img" });
    var X = function (v) { return m.l + (v - xd[0]) / ((xd[1] - xd[0]) || 1) * (w - m.l - m.r); };
    var Y = function (v) { return h - m.b - (v - yd[0]) / ((yd[1] - yd[0]) || 1) * (h - m.t - m.b); };
    var g = sv("g", { "class": "axis" });
    ticks(yd[0], yd[1], 5).forEach(function (t) {
      g.appendChild(sv("line", { x1: m.l, x2: w - m.r, y1: Y(t), y2: Y(t), "stroke-dasharray": "2,3" }));
      g.appendChild(sv("text", { x: m.l - 6, y: Y(t) + 4, "text-anchor": "end", text: +t.toFixed(4) + "" }));
    });
    ticks(xd[0], xd[1], 6).forEach(function (t) {
      g.appendChild(sv("line", { x1: X(t), x2: X(t), y1: h - m.b, y2: h - m.b + 4 }));
      g.appendChild(sv("text", { x: X(t), y: h - m.b + 16, "text-anchor": "middle", text: +t.toFixed(2) + "" }));
    });
    g.appendChild(sv("line", { x1: m.l, x2: w - m.r, y1: h - m.b, y2: h - m.b }));
    g.appendChild(sv("text", { x: (m.l + w - m.r) / 2, y: h - 4, "text-anchor": "middle", text: xlabel }));
    g.appendChild(sv("text", { x: 12, y: (m.t + h - m.b) / 2, "text-anchor": "middle", transform: "rotate(-90 12 " + (m.t + h - m.b) / 2 + ")", text: ylabel }));
    svg.appendChild(g);
    return { svg: svg, X: X, Y: Y };
  }
  function extent(vals, pad) {
    var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) { lo -= 0.01; hi += 0.01; }
    var p = (hi - lo) * (pad || 0);
    return [lo - p, hi + p];
  }

  function bestChart(xkey, xlabel) {
    var series = [["proxy", "#2563eb", "proxy fitness"], ["heldout", "#dc2626", "held-out"]];
    var pts = [], ys = [];
    series.forEach(function (s) { DATA.best_so_far[s[0]].forEach(function (p) { if (p[xkey] !== null) { pts.push(p[xkey]); ys.push(p.value); } }); });
    var last = DATA.candidates.length ? DATA.candidates[DATA.candidates.length - 1][xkey] : 0;
    if (last !== null && last !== undefined) pts.push(last);
    if (!ys.length) return el("p", { "class": "muted", text: "no evaluated candidate yet" });
    var f = frame(560, 250, extent(pts.concat([0])), extent(ys, 0.08), xlabel, "best so far");
    var xmax = Math.max.apply(null, pts);
    series.forEach(function (s) {
      var p = DATA.best_so_far[s[0]].filter(function (q) { return q[xkey] !== null && q[xkey] !== undefined; });
      if (!p.length) return;
      var d = "M" + f.X(p[0][xkey]) + "," + f.Y(p[0].value);
      for (var i = 1; i < p.length; i++) d += "H" + f.X(p[i][xkey]) + "V" + f.Y(p[i].value);
      d += "H" + f.X(xmax);
      f.svg.appendChild(sv("path", { d: d, fill: "none", stroke: s[1], "stroke-width": 2 }));
      p.forEach(function (q) {
        var x = f.X(q[xkey]), y = f.Y(q.value), label = s[2] + " " + fmt(q.value) + " by candidate " + q.id + (q.seed ? " (seed)" : "");
        var mark = q.seed ? sv("path", { d: "M" + x + "," + (y - 6) + "l5,9h-10z", fill: "#fff", stroke: s[1], "stroke-width": 1.5, "class": "seed-mark" })
                          : sv("circle", { cx: x, cy: y, r: 3.5, fill: s[1] });
        mark.addEventListener("mousemove", function (e) { showTip(e, label); });
        mark.addEventListener("mouseleave", hideTip);
        mark.addEventListener("click", function () { select(q.id); });
        f.svg.appendChild(mark);
      });
    });
    return el("div", {}, [f.svg, el("div", { "class": "legend" }, [
      el("span", { style: "--c:#2563eb", text: "proxy fitness" }), el("span", { style: "--c:#dc2626", text: "held-out (funnel)" }),
      el("span", { style: "--c:transparent", text: "\u25B3 a seed (built-in rule)" })])]);
  }

  function outcomeChart() {
    var o = DATA.outcomes, order = o.order;
    if (!o.buckets.length) return el("p", { "class": "muted", text: "no proposed candidate yet" });
    var w = 560, h = 250, m = { l: 44, r: 10, t: 10, b: 36 };
    var maxN = Math.max.apply(null, o.buckets.map(function (b) { var n = 0; for (var k in b.counts) n += b.counts[k]; return n; }));
    var f = frame(w, h, [0, o.buckets.length], [0, maxN], "slice of the run (" + o.buckets.length + " slices of about " + (o.buckets[0].to - o.buckets[0].from + 1) + " seq)", "replies", m);
    var bw = (w - m.l - m.r) / o.buckets.length;
    o.buckets.forEach(function (b, i) {
      var y = 0;
      order.forEach(function (k) {
        var n = b.counts[k] || 0;
        if (!n) return;
        var r = sv("rect", { x: m.l + i * bw + 1, width: Math.max(bw - 2, 1), y: f.Y(y + n), height: f.Y(y) - f.Y(y + n), fill: colorOf(k, order) });
        r.addEventListener("mousemove", function (e) { showTip(e, "seq " + b.from + "\u2013" + b.to + ": " + k + " \u00D7 " + n); });
        r.addEventListener("mouseleave", hideTip);
        f.svg.appendChild(r);
        y += n;
      });
    });
    var legend = el("div", { "class": "legend" }, order.map(function (k) { return el("span", { style: "--c:" + colorOf(k, order), text: k + " (" + o.total[k] + ")" }); }));
    return el("div", {}, [f.svg, legend]);
  }

  function groupTables() {
    var o = DATA.outcomes, out = [];
    Object.keys(o.groups).forEach(function (col) {
      var table = o.groups[col], names = Object.keys(table);
      var head = el("tr", {}, [el("th", { text: col })].concat(o.order.map(function (k) { return el("th", { text: k }); })).concat([el("th", { text: "total" })]));
      var body = names.map(function (n) {
        var tot = 0; o.order.forEach(function (k) { tot += table[n][k] || 0; });
        return el("tr", {}, [el("td", { text: n })].concat(o.order.map(function (k) { return el("td", { "class": "num", text: String(table[n][k] || "") }); })).concat([el("td", { "class": "num", text: String(tot) })]));
      });
      out.push(el("h3", { text: "per " + col }), el("div", { style: "overflow:auto" }, [el("table", { "class": "grid outcome-" + col }, [el("thead", {}, [head]), el("tbody", {}, body)])]));
    });
    return out;
  }

  // what each operator (and each model) proposed: the numbers of `symdisc runs show`
  var PROPOSAL_COLS = [["replies", "replies", 0], ["new", "new programs", 0], ["repeats", "repeats", 0],
                       ["improvements", "improvements", 0], ["seconds", "seconds", 1], ["new_per_min", "new per minute", 1]];
  function proposalTable(by, stats) {
    var head = el("tr", {}, [el("th", { text: by })].concat(PROPOSAL_COLS.map(function (c) { return el("th", { text: c[1] }); })));
    var body = Object.keys(stats).map(function (k) {
      var st = stats[k];
      return el("tr", { "class": "proposal-row", "data-by": by, "data-key": k }, [el("td", { text: k })].concat(PROPOSAL_COLS.map(function (c) {
        return el("td", { "class": "num", "data-col": c[0], text: c[2] ? fmt(st[c[0]], c[2]) : String(st[c[0]]) });
      })));
    });
    return el("div", { style: "overflow:auto" }, [el("table", { "class": "grid proposals-" + by }, [el("thead", {}, [head]), el("tbody", {}, body)])]);
  }
  function proposalSection() {
    var p = DATA.proposals || {}, ops = p.operator || {}, models = p.model || {};
    var out = [];
    if (!Object.keys(ops).length) out.push(el("p", { "class": "muted", text: "No judged proposal names its operator yet." }));
    else out.push(el("p", { "class": "muted", text: "New programs: evaluated and new; improvements: new programs that beat their parent's proxy fitness; seconds: generation or fitting, gate and sandbox." }), proposalTable("operator", ops));
    if (Object.keys(models).length > 1) out.push(el("h3", { text: "by model" }), proposalTable("model", models));
    return [el("div", { "class": "card" }, out)];
  }

  function scatter() {
    var fn = DATA.funnel, p = fn.points;
    var rho = fn.spearman === null || fn.spearman === undefined ? "n/a (fewer than 3 points)" : (fn.spearman >= 0 ? "+" : "") + fn.spearman.toFixed(3);
    var note = el("p", {}, ["Spearman rank correlation (proxy vs held-out): ", el("b", { id: "spearman", text: rho }), " over " + p.length + " candidates with both scores."]);
    if (fn.proxy_best_is_heldout_best === false) note.appendChild(el("span", { "class": "verdict-failed", text: " The proxy's best (" + fn.proxy_best_id + ") is not the held-out best (" + fn.heldout_best_id + "): the proxy may be overfit." }));
    if (!p.length) return el("div", {}, [note, el("p", { "class": "muted", text: "The funnel gave no held-out score in this run." })]);
    var f = frame(560, 280, extent(p.map(function (q) { return q.proxy; }), 0.08), extent(p.map(function (q) { return q.heldout; }), 0.08), "proxy fitness", "held-out score");
    p.forEach(function (q) {
      var c = sv("circle", { cx: f.X(q.proxy), cy: f.Y(q.heldout), r: q.id === DATA.best ? 6 : 4, fill: q.id === DATA.best ? "#f59e0b" : "#2563eb", "fill-opacity": 0.75, "class": "scatter-point" });
      c.addEventListener("mousemove", function (e) { showTip(e, "candidate " + q.id + ": proxy " + fmt(q.proxy) + ", held-out " + fmt(q.heldout)); });
      c.addEventListener("mouseleave", hideTip);
      c.addEventListener("click", function () { select(q.id); });
      f.svg.appendChild(c);
    });
    return el("div", {}, [note, f.svg]);
  }

  // -- lineage -----------------------------------------------------------------------------------
  function tree() {
    var nodes = DATA.tree.nodes;
    if (!nodes.length) return el("p", { "class": "muted", text: "no evaluated candidate yet" });
    var kids = {}, roots = [], depth = {}, pos = {}, row = 0, maxDepth = 0;
    nodes.forEach(function (n) { kids[n.id] = []; });
    nodes.forEach(function (n) { if (n.parent === null || kids[n.parent] === undefined) roots.push(n.id); else kids[n.parent].push(n.id); });
    function place(id, d) {
      depth[id] = d; maxDepth = Math.max(maxDepth, d);
      if (!kids[id].length) { pos[id] = row++; return; }
      kids[id].forEach(function (k) { place(k, d + 1); });
      pos[id] = (pos[kids[id][0]] + pos[kids[id][kids[id].length - 1]]) / 2;
    }
    roots.forEach(function (r) { place(r, 0); });
    var dx = 170, dy = 34, w = (maxDepth + 1) * dx + 60, h = row * dy + 20;
    var svg = sv("svg", { viewBox: "0 0 " + w + " " + h, width: w, height: h, id: "lineage-tree", style: "max-width:none" });
    var X = function (id) { return 16 + depth[id] * dx; }, Y = function (id) { return 16 + pos[id] * dy; };
    nodes.forEach(function (n) {
      if (n.parent !== null && kids[n.parent] !== undefined)
        svg.appendChild(sv("path", { "class": "tree-edge", d: "M" + X(n.parent) + "," + Y(n.parent) + "C" + (X(n.parent) + dx / 2) + "," + Y(n.parent) + " " + (X(n.id) - dx / 2) + "," + Y(n.id) + " " + X(n.id) + "," + Y(n.id) }));
    });
    var leaders = DATA.tree.leaders;
    nodes.forEach(function (n) {
      var c = byId[n.id] || {}, isSeed = c.origin === "seed", rank = leaders.indexOf(n.id);
      var fill = n.id === DATA.tree.best ? "#f59e0b" : rank >= 0 ? "#2563eb" : isSeed ? "#98a2b3" : "#16a34a";
      var label = "#" + n.id + " " + (c.name || c.operator || c.origin || "") + (c.fitness !== null && c.fitness !== undefined ? " " + fmt(c.fitness, 3) : "");
      var g = sv("g", { "class": "tree-node", "data-id": n.id, on: { click: function () { select(n.id); } } }, [
        sv("circle", { cx: X(n.id), cy: Y(n.id), r: n.id === DATA.tree.best ? 8 : 6, fill: fill }),
        sv("text", { x: X(n.id) + 11, y: Y(n.id) + 4, text: label })]);
      g.appendChild(sv("title", { text: "candidate " + n.id + (rank >= 0 ? " (leaderboard #" + (rank + 1) + ")" : "") + (c.heldout !== null && c.heldout !== undefined ? ", held-out " + fmt(c.heldout) : "") }));
      svg.appendChild(g);
    });
    var scroller = el("div", { style: "overflow:auto;max-height:460px" }, [svg]);
    if (DATA.tree.best !== null && depth[DATA.tree.best] !== undefined) {
      var bx = X(DATA.tree.best), by = Y(DATA.tree.best);
      requestAnimationFrame(function () { scroller.scrollLeft = Math.max(0, bx - scroller.clientWidth + 260); scroller.scrollTop = Math.max(0, by - 200); });
    }
    return el("div", {}, [scroller, el("div", { "class": "legend" }, [
      el("span", { style: "--c:#f59e0b", text: "the best" }), el("span", { style: "--c:#2563eb", text: "the other leaders" }),
      el("span", { style: "--c:#16a34a", text: "an ancestor" }), el("span", { style: "--c:#98a2b3", text: "a seed" })])]);
  }

  function lineDiff(a, b) {
    var x = (a || "").split("\n"), y = (b || "").split("\n"), n = x.length, m = y.length;
    if (n * m > 250000) return null;
    var L = [];
    for (var i = 0; i <= n; i++) { L.push(new Int32Array(m + 1)); }
    for (i = n - 1; i >= 0; i--) for (var j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    var out = []; i = 0; j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
      else if (L[i + 1][j] >= L[i][j + 1]) out.push(["-", x[i++]]);
      else out.push(["+", y[j++]]);
    }
    while (i < n) out.push(["-", x[i++]]);
    while (j < m) out.push(["+", y[j++]]);
    return out;
  }

  function detail() {
    var box = el("div", { id: "detail", "class": "card" });
    var c = byId[state.selected];
    if (!c) { box.appendChild(el("p", { "class": "muted", text: "Click a candidate in the tree, a chart or the table." })); return box; }
    var parent = c.parent_id !== null && c.parent_id !== undefined ? byId[c.parent_id] : null;
    var facts = [["candidate", c.id], ["seq", c.seq], ["origin", c.origin], ["name", c.name], ["operator", c.operator], ["model", c.model],
                 ["verdict", c.outcome], ["reason", c.reason], ["stage", c.stage], ["line", c.line], ["proxy fitness", fmt(c.fitness)],
                 ["held-out", fmt(c.heldout)], ["best lr", c.best_lr], ["state", c.state_scalars !== null && c.state_scalars !== undefined ? c.state_scalars + " scalars, " + (c.state_bytes || 0) + " B" : null],
                 ["tokens in/out", c.tokens_in !== null && c.tokens_in !== undefined ? c.tokens_in + " / " + c.tokens_out : null],
                 ["generate / gate / eval ms", [c.gen_ms, c.gate_ms, c.eval_ms].map(function (v) { return v === null || v === undefined ? "-" : Math.round(v); }).join(" / ")],
                 ["at", secs(c.t)], ["duplicate of", c.duplicate_of]];
    var grid = el("div", { "class": "facts" });
    facts.forEach(function (f) { if (f[1] !== null && f[1] !== undefined && f[1] !== "") grid.appendChild(el("div", {}, [el("b", { text: f[0] }), String(f[1])])); });
    var plink = parent ? el("a", { href: "#", text: "#" + parent.id + " " + (parent.name || parent.origin) + " (" + fmt(parent.fitness) + ")", on: { click: function (e) { e.preventDefault(); select(parent.id); } } }) : el("span", { "class": "muted", text: "none" });
    box.appendChild(el("h3", { text: "candidate " + c.id }));
    box.appendChild(grid);
    box.appendChild(el("div", {}, [el("b", { text: "parent: " }), plink]));
    if (c.message) box.appendChild(el("pre", { text: c.message }));
    var row = el("div", { "class": "row" });
    row.appendChild(el("div", { "class": "card" }, [el("h3", { text: c.code ? "code (what the sandbox ran)" : "the reply (no code was extracted)" }), el("pre", { "class": "code", text: c.code || c.reply || "" })]));
    if (parent && parent.code && c.code) {
      var d = lineDiff(parent.code, c.code), pre = el("pre", { "class": "diff" });
      if (d) d.forEach(function (l) { pre.appendChild(el("span", { "class": l[0] === "+" ? "diff-add" : l[0] === "-" ? "diff-del" : "diff-same", text: l[0] + " " + l[1] })); });
      else pre.textContent = "(too long to diff here)";
      row.appendChild(el("div", { "class": "card" }, [el("h3", { text: "diff against its parent #" + parent.id }), pre]));
    }
    box.appendChild(row);
    return box;
  }

  function select(id) {
    state.selected = id;
    var old = document.getElementById("detail");
    if (old) old.parentNode.replaceChild(detail(), old);
    document.querySelectorAll("tr.selected").forEach(function (r) { r.classList.remove("selected"); });
    var tr = document.querySelector("tr[data-id='" + id + "']");
    if (tr) tr.classList.add("selected");
    var d = document.getElementById("detail");
    if (d && d.scrollIntoView) d.scrollIntoView({ block: "nearest" });
  }

  // -- the table of every candidate ------------------------------------------------------------
  var COLS = [["id", "id", 1], ["seq", "seq", 1], ["origin", "origin"], ["operator", "operator"], ["model", "model"], ["name", "name"],
              ["parent_id", "parent", 1], ["outcome", "verdict"], ["fitness", "proxy", 1], ["heldout", "held-out", 1], ["t", "at (s)", 1], ["message", "message"]];
  function tableCols() { return COLS.filter(function (c) { return (c[0] !== "operator" && c[0] !== "model") || DATA.columns.indexOf(c[0]) >= 0; }); }
  function filtered() {
    var q = state.query.trim().toLowerCase(), rows = DATA.candidates;
    if (q) {
      var words = q.split(/\s+/);
      rows = rows.filter(function (r) { return words.every(function (w) { return r._hay.indexOf(w) >= 0; }); });
    }
    var k = state.sortKey, dir = state.sortDir;
    return rows.slice().sort(function (a, b) {
      var x = a[k], y = b[k];
      if (x === y) return a.seq - b.seq;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  function tableSection() {
    var wrap = el("div", { id: "candidate-table" });
    var search = el("input", { type: "search", id: "search", placeholder: "search id, origin, verdict, reason, message, code\u2026", value: state.query });
    var count = el("span", { id: "table-count", "class": "muted" });
    var prev = el("button", { text: "\u2190 previous" }), next = el("button", { text: "next \u2192" }), where = el("span", { "class": "muted" });
    var tbody = el("tbody"), cols = tableCols();
    var head = el("tr", {}, cols.map(function (c) {
      var th = el("th", { "class": "sortable" + (state.sortKey === c[0] ? (state.sortDir > 0 ? " sorted-asc" : " sorted-desc") : ""), "data-key": c[0], text: c[1] });
      th.addEventListener("click", function () {
        if (state.sortKey === c[0]) state.sortDir = -state.sortDir; else { state.sortKey = c[0]; state.sortDir = c[2] && c[0] !== "id" && c[0] !== "seq" && c[0] !== "t" && c[0] !== "parent_id" ? -1 : 1; }
        state.page = 0;
        head.querySelectorAll("th").forEach(function (h) { h.className = "sortable" + (h.getAttribute("data-key") === state.sortKey ? (state.sortDir > 0 ? " sorted-asc" : " sorted-desc") : ""); });
        fill();
      });
      return th;
    }));
    function fill() {
      var rows = filtered(), pages = Math.max(1, Math.ceil(rows.length / PAGE));
      state.page = Math.min(state.page, pages - 1);
      count.textContent = rows.length + " of " + DATA.candidates.length + " candidates";
      where.textContent = "page " + (state.page + 1) + " of " + pages;
      prev.disabled = state.page === 0; next.disabled = state.page >= pages - 1;
      var frag = document.createDocumentFragment();
      rows.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (r) {
        var tr = el("tr", { "data-id": r.id, "class": "cand-row" + (r.id === state.selected ? " selected" : "") });
        cols.forEach(function (c) {
          var v = r[c[0]], td;
          if (c[0] === "fitness" || c[0] === "heldout") td = el("td", { "class": "num", text: fmt(v) });
          else if (c[0] === "outcome") td = el("td", { "class": "verdict-" + r.status, text: v });
          else if (c[0] === "message") td = el("td", { "class": "msg", title: v || "", text: v || "" });
          else td = el("td", { "class": c[2] ? "num" : null, text: v === null || v === undefined ? "" : String(v) });
          tr.appendChild(td);
        });
        tr.addEventListener("click", function () { select(r.id); });
        frag.appendChild(tr);
      });
      tbody.textContent = "";
      tbody.appendChild(frag);
    }
    var timer = null;
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(function () { state.query = search.value; state.page = 0; fill(); }, 120); });
    prev.addEventListener("click", function () { state.page--; fill(); });
    next.addEventListener("click", function () { state.page++; fill(); });
    fill();
    wrap.appendChild(el("div", { "class": "toolbar" }, [search, count, prev, where, next]));
    wrap.appendChild(el("div", { style: "overflow:auto;max-height:640px" }, [el("table", { "class": "grid" }, [el("thead", {}, [head]), tbody])]));
    return wrap;
  }

  // -- bench ----------------------------------------------------------------------------------
  function benchSection() {
    if (!DATA.bench.length) return [el("p", { "class": "muted", text: "No bench run has trained this run's candidates yet (symdisc bench " + DATA.run.id + ")." })];
    var out = [];
    DATA.bench.forEach(function (b) {
      out.push(el("h3", { text: "bench run " + b.run_id + " (" + b.status + ", " + b.created_at + ")" }));
      var head = el("tr", {}, ["task", "optimizer", "lr", "final acc (mean)", "best acc (mean)", "seeds", "diverged", "memory"].map(function (t) { return el("th", { text: t }); }));
      var body = b.rows.map(function (r) {
        return el("tr", { "class": r.ours ? "selected" : null }, [el("td", { text: r.task }), el("td", { text: r.optimizer }), el("td", { "class": "num", text: fmt(r.lr, 5) }),
          el("td", { "class": "num", text: fmt(r.final_mean) }), el("td", { "class": "num", text: fmt(r.best_mean) }), el("td", { "class": "num", text: String(r.seeds) }),
          el("td", { "class": "num", text: String(r.diverged) }), el("td", { text: r.memory_class || "" })]);
      });
      out.push(el("table", { "class": "grid bench-table" }, [el("thead", {}, [head]), el("tbody", {}, body)]));
      b.figures.forEach(function (f) { out.push(el("figure", {}, [el("img", { src: f.src, alt: "bench figure " + f.task, style: "max-width:100%", "class": "bench-figure" }), el("figcaption", { "class": "muted", text: f.path })])); });
    });
    return out;
  }

  // -- the page -------------------------------------------------------------------------------
  function header() {
    var r = DATA.run, s = r.summary || {}, v = r.versions || {}, b = r.budget || {};
    var budget = [b.candidates !== null && b.candidates !== undefined ? b.candidates + " candidates" : null, b.minutes ? b.minutes + " min" : null, b.evaluations ? b.evaluations + " evaluations" : null].filter(Boolean).join(" or ") || "none recorded";
    var title = el("h1", {}, ["run " + r.id + " ", el("span", { "class": "badge status-" + r.status, id: "run-status", text: r.status })]);
    if (OPTS.live_url && r.status === "running") title.appendChild(el("span", { "class": "live", id: "live-badge", text: " \u25CF live, redrawn every " + POLL_MS / 1000 + " s" }));
    var facts = [["kind", r.kind], ["model", r.model], ["backend", r.backend], ["model sha256", r.model_sha256 ? r.model_sha256.slice(0, 16) + "\u2026" : null],
                 ["memory", r.config.memory], ["proposer", r.config.proposer], ["seed", r.config.seed], ["budget", budget],
                 ["selected on", r.selected_on],
                 ["created (UTC)", r.created_at], ["updated (UTC)", r.updated_at], ["elapsed", secs(s.elapsed_s)], ["host", r.host],
                 ["passed the gate", s.passed_gate], ["tokens/s", s.tokens_per_s], ["candidates/min", s.candidates_per_min],
                 ["replies repaired (saved)", DATA.counts.repaired ? DATA.counts.repaired + " (" + DATA.counts.repair_saved + ")" : null]];
    Object.keys(v).forEach(function (k) { facts.push([k, v[k]]); });
    var grid = el("div", { "class": "facts" }, [el("div", {}, [el("b", { text: "candidates" }), el("span", { id: "n-candidates", text: String(DATA.candidates.length) }),
      " (" + DATA.counts.proposed + " proposed, " + DATA.counts.evaluated + " evaluated)"])]);
    facts.forEach(function (f) { if (f[1] !== null && f[1] !== undefined && f[1] !== "") grid.appendChild(el("div", { title: String(f[1]) }, [el("b", { text: f[0] }), String(f[1])])); });
    var best = byId[DATA.best];
    var kids = [title];
    if (OPTS.home_url) kids.unshift(el("a", { href: OPTS.home_url, text: "\u2190 all runs" }));
    kids.push(grid);
    if (best) kids.push(el("p", {}, ["Best (held-out where the funnel gave one, then proxy): ", el("a", { href: "#", id: "best-link", text: "candidate " + best.id + " " + (best.name || best.origin), on: { click: function (e) { e.preventDefault(); select(best.id); } } }),
      ", proxy " + fmt(best.fitness) + (best.heldout !== null && best.heldout !== undefined ? ", held-out " + fmt(best.heldout) : "") + "."]));
    kids.push(el("div", {}, [el("b", { text: "Repeat it: " }), el("pre", { id: "repeat-command", text: r.command })]));
    kids.push(el("details", {}, [el("summary", { text: "full configuration" }), el("pre", { text: JSON.stringify(r.config, null, 2) })]));
    if (r.prompts) kids.push(el("details", {}, [el("summary", { text: "prompts" }), el("pre", { text: typeof r.prompts === "string" ? r.prompts : JSON.stringify(r.prompts, null, 2) })]));
    return kids;
  }

  function section(title, kids, id) { return [el("h2", { id: id, text: title })].concat(kids); }

  function prepare() {
    byId = {};
    DATA.candidates.forEach(function (c) {
      byId[c.id] = c;
      c._hay = [c.id, c.seq, c.origin, c.name, c.operator, c.model, c.outcome, c.reason, c.stage, c.message, c.code].join(" ").toLowerCase();
    });
    if (state.selected === null || !byId[state.selected]) state.selected = DATA.best;
  }

  function render() {
    var t0 = performance.now();
    document.body.setAttribute("data-ready", "0");
    app.textContent = "";
    var parts = [].concat(
      header(),
      section("Best fitness so far", [el("div", { "class": "row" }, [el("div", { "class": "card" }, [el("h3", { text: "against candidates" }), bestChart("seq", "candidate (seq)")]),
        el("div", { "class": "card" }, [el("h3", { text: "against wall time" }), bestChart("t", "seconds since the run started")])])], "best"),
      section("Where the replies went", [el("div", { "class": "row" }, [el("div", { "class": "card" }, [outcomeChart()]), el("div", { "class": "card" }, groupTables())])], "outcomes"),
      section("Proposals by operator", proposalSection(), "proposals"),
      section("Lineage: from the seeds to the " + DATA.tree.leaders.length + " best (" + DATA.tree.nodes.length + " programs)", [el("div", { "class": "card", id: "tree-card" }, [tree()]), detail()], "lineage"),
      section("Proxy against held-out", [el("div", { "class": "card" }, [scatter()])], "funnel"),
      section("Bench results", benchSection(), "bench"),
      section("Every candidate", [tableSection()], "candidates"),
      [el("p", { "class": "muted", id: "timing", text: "symdisc report, generated " + DATA.generated_at + "; data read in " + Math.round(T_PARSED - T_START) + " ms, drawn in " + Math.round(performance.now() - t0) + " ms, ready " + Math.round(performance.now()) + " ms after the page began to load." })]
    );
    parts.forEach(function (p) { app.appendChild(p); });
    document.body.setAttribute("data-ready", "1");
  }

  function poll() {
    if (!OPTS.live_url || DATA.run.status !== "running") return;
    setTimeout(function () {
      fetch(OPTS.live_url, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (d) {
        var changed = d.candidates.length !== DATA.candidates.length || d.run.status !== DATA.run.status || d.run.updated_at !== DATA.run.updated_at;
        if (changed) {
          var q = document.getElementById("search"); if (q) state.query = q.value;
          var y = window.scrollY;
          DATA = d; prepare(); render(); window.scrollTo(0, y);
        }
        poll();
      }).catch(function (e) { reportError("live refresh failed: " + e); setTimeout(poll, POLL_MS); });
    }, POLL_MS);
  }

  try { prepare(); render(); poll(); } catch (e) { reportError("error: " + (e && e.stack || e)); }
})();
