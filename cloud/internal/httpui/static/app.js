// Outpost dashboard: keeps the server-rendered page live from the JSON API
// (/api/v1/...) and the server-sent event stream (/api/v1/stream). No
// external resources; data is put in the page as text, never as HTML.
"use strict";
(function () {
  const MAX_ROWS = 200;     // rows kept in the events and verdicts tables
  const MAX_POINTS = 60;    // scores kept per stream plot
  const REFRESH_MS = 5000;  // devices, summary and rollouts poll interval

  const $ = (id) => document.getElementById(id);
  const events = [];        // newest first
  const verdicts = [];      // newest first
  const verdictOf = new Map(); // "agent:seq" -> verdict
  const series = new Map(); // "agent stream" -> {agent, stream, high, points: [{score, kind}]}
  const seenEvents = new Set();
  let missed = 0;
  let rolloutsMissing = false, rolloutsChecked = 0;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells, key) {
    const tr = el("tr");
    if (key) tr.dataset.key = key;
    for (const c of cells) {
      if (Array.isArray(c)) tr.appendChild(el("td", c[0], c[1]));
      else tr.appendChild(el("td", c));
    }
    return tr;
  }
  function bytes(b) {
    b = Number(b || 0);
    if (b < 1024) return b + " B";
    const u = "KMGTPE";
    let i = -1;
    do { b /= 1024; i++; } while (b >= 1024 && i < u.length - 1);
    return b.toFixed(1) + " " + u[i] + "iB";
  }
  const ts = (t) => (!t || t.startsWith("0001-")) ? "-" : new Date(t).toISOString().replace(".000Z", "Z");
  const num = (f, d) => (typeof f === "number" ? f.toFixed(d === undefined ? 3 : d) : "-");
  const pct = (f) => (typeof f === "number" ? (100 * f).toFixed(1) + "%" : "-");
  const key = (x) => x.agent + ":" + x.seq;
  function models(m) {
    if (!m) return "";
    return Object.keys(m).sort().map((k) => k + "=" + m[k]).join(" ");
  }
  function replaceBody(id, rows, emptyText, cols) {
    const body = $(id);
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = el("tr", null, "empty");
      const td = el("td", emptyText);
      td.colSpan = cols;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const r of rows) body.appendChild(r);
  }
  async function getJSON(path) {
    const res = await fetch(path, { cache: "no-store" });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const err = new Error((body && body.message) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // Devices and fleet totals.
  function renderDevices(devs) {
    const rows = devs.map((d) => {
      const tr = row([
        d.id,
        [d.online ? "online" : "offline", d.online ? "online" : "offline"],
        ts(d.last_seen), d.version || "", d.profile || "", d.revision || 0, d.group || "",
        models(d.models),
        (d.outbox_depth || 0) + " (" + bytes(d.outbox_bytes) + ")",
        d.drops || 0, bytes(d.raw_bytes), bytes(d.uplink_bytes),
        [d.last_error || "", "error"],
      ]);
      tr.dataset.agent = d.id;
      return tr;
    });
    replaceBody("devices-body", rows, "no devices yet", 13);
  }
  function renderSummary(s) {
    $("sum-online").textContent = s.online;
    $("sum-devices").textContent = s.devices;
    $("sum-raw").textContent = bytes(s.raw_bytes);
    $("sum-uplink").textContent = bytes(s.uplink_bytes);
    $("sum-ratio").textContent = pct(s.uplink_ratio);
    $("sum-saved").textContent = pct(s.saved);
    $("sum-outbox").textContent = s.outbox_depth;
    $("sum-outbox-bytes").textContent = bytes(s.outbox_bytes);
    $("sum-drops").textContent = s.drops;
    $("sum-anomalies").textContent = s.anomalies;
    $("sum-uncertain").textContent = s.uncertain;
    $("sum-readings").textContent = s.readings;
    $("bw-bar").style.width = (typeof s.uplink_ratio === "number" ? Math.min(100, 100 * s.uplink_ratio) : 0) + "%";
    $("version").textContent = s.version;
    $("rendered").textContent = ts(s.time);
  }

  // Rollouts: the service may not have them; 404 means none.
  function renderRollouts(list, err, boxID, what) {
    const box = $(boxID || "rollouts");
    what = what || "rollouts";
    box.replaceChildren();
    if (err) {
      box.appendChild(el("p", err.status === 404 ? "no " + what + " (this outpost-cloud does not run them)" : what + " unavailable: " + err.message, "empty"));
      return;
    }
    if (!Array.isArray(list) || list.length === 0) {
      box.appendChild(el("p", boxID ? "no " + what + " yet" : "no rollouts in progress", "empty"));
      return;
    }
    const cols = [];
    for (const r of list) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
    const table = el("table");
    const head = el("tr");
    for (const c of cols) head.appendChild(el("th", c));
    table.appendChild(el("thead")).appendChild(head);
    const body = el("tbody");
    for (const r of list) {
      body.appendChild(row(cols.map((c) => {
        const v = r[c];
        return v !== null && typeof v === "object" ? JSON.stringify(v) : (v === undefined ? "" : v);
      })));
    }
    table.appendChild(body);
    box.appendChild(table);
  }

  // Events, verdicts and score plots.
  function eventRow(e) {
    const v = verdictOf.get(key(e));
    const decision = v ? v.decision : (e.verdict || "");
    return row([ts(e.ts), e.agent, e.seq, e.stream, [e.kind, e.kind], num(e.score), typeof e.value === "number" ? +e.value.toPrecision(6) : e.value, e.model || "",
      e.source || "", [decision, decision]], key(e));
  }
  function verdictRow(v) {
    return row([ts(v.decided), v.agent, v.seq, v.stream, [v.edge_kind, v.edge_kind], [v.decision, v.decision],
      num(v.score), v.model, num(v.latency_ms), v.reason || ""], key(v));
  }
  function addEvent(e, live) {
    const k = key(e);
    if (seenEvents.has(k)) return false;
    seenEvents.add(k);
    events.unshift(e);
    if (events.length > MAX_ROWS) seenEvents.delete(key(events.pop()));
    const sk = e.agent + " " + e.stream;
    let s = series.get(sk);
    if (!s) { s = { agent: e.agent, stream: e.stream, high: e.high, points: [] }; series.set(sk, s); }
    s.high = e.high;
    s.points.push({ score: e.score, kind: e.kind });
    if (s.points.length > MAX_POINTS) s.points.shift();
    if (live) {
      const body = $("events-body");
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      const tr = eventRow(e);
      tr.classList.add("new");
      body.prepend(tr);
      while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    }
    return true;
  }
  function addVerdict(v, live) {
    verdictOf.set(key(v), v);
    verdicts.unshift(v);
    if (verdicts.length > MAX_ROWS) {
      const old = verdicts.pop();
      if (verdictOf.get(key(old)) === old) verdictOf.delete(key(old));
    }
    if (live) {
      const body = $("verdicts-body");
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      const tr = verdictRow(v);
      tr.classList.add("new");
      body.prepend(tr);
      while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
      const er = $("events-body").querySelector('tr[data-key="' + CSS.escape(key(v)) + '"]');
      if (er) {
        er.lastChild.textContent = v.decision;
        er.lastChild.className = v.decision;
      }
    }
  }
  function renderTables() {
    replaceBody("events-body", events.map(eventRow), "no events yet", 10);
    replaceBody("verdicts-body", verdicts.map(verdictRow), "no verdicts yet", 10);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function renderPlots() {
    const box = $("plots");
    box.replaceChildren();
    if (series.size === 0) { box.appendChild(el("p", "no events yet", "empty")); return; }
    const keys = Array.from(series.keys()).sort();
    for (const k of keys) {
      const s = series.get(k);
      const W = 300, H = 60, P = 4;
      const finite = s.points.map((p) => p.score).filter(Number.isFinite);
      let max = Math.max(1e-9, ...finite, Number.isFinite(s.high) ? s.high * 1.2 : 0);
      const x = (i) => s.points.length < 2 ? W / 2 : P + (i * (W - 2 * P)) / (s.points.length - 1);
      const y = (v) => H - P - (Math.max(0, Math.min(v, max)) / max) * (H - 2 * P);
      const div = el("div", null, "plot");
      div.dataset.stream = k;
      const last = s.points[s.points.length - 1];
      div.appendChild(el("div", s.agent + " · " + s.stream, "name"));
      const g = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img" });
      g.appendChild(svg("title", {})).textContent = "edge scores of " + s.agent + " " + s.stream;
      if (Number.isFinite(s.high) && s.high > 0) {
        g.appendChild(svg("line", { x1: 0, x2: W, y1: y(s.high), y2: y(s.high), class: "threshold" }));
      }
      g.appendChild(svg("polyline", {
        class: "spark",
        points: s.points.map((p, i) => x(i).toFixed(1) + "," + y(p.score).toFixed(1)).join(" "),
      }));
      s.points.forEach((p, i) => g.appendChild(svg("circle", { cx: x(i), cy: y(p.score), r: 2, class: "dot-" + p.kind })));
      div.appendChild(g);
      div.appendChild(el("div", s.points.length + " events · last score " + num(last.score) + " · high " + num(s.high), "meta"));
      box.appendChild(div);
    }
  }

  async function refresh() {
    try {
      const [devs, sum] = await Promise.all([getJSON("/api/v1/devices"), getJSON("/api/v1/summary")]);
      renderDevices(devs);
      renderSummary(sum);
    } catch (e) { console.warn("refresh:", e); }
    // A service without rollouts (404) is asked again only every minute.
    if (!rolloutsMissing || Date.now() - rolloutsChecked > 60000) {
      rolloutsChecked = Date.now();
      try {
        renderRollouts(await getJSON("/api/v1/rollouts"));
        rolloutsMissing = false;
      } catch (e) {
        rolloutsMissing = e.status === 404;
        renderRollouts(null, e);
      }
    }
    // Learning decisions, in the same generic table.
    try {
      renderRollouts(await getJSON("/api/v1/learn"), null, "decisions", "model decisions");
    } catch (e) {
      renderRollouts(null, e, "decisions", "model decisions");
    }
  }

  async function loadHistory() {
    try {
      const [evs, vs] = await Promise.all([
        getJSON("/api/v1/events?since=1h&limit=" + MAX_ROWS),
        getJSON("/api/v1/verdicts?since=1h&limit=" + MAX_ROWS),
      ]);
      for (const v of vs) addVerdict(v, false); // oldest first
      for (const e of evs) addEvent(e, false);
      // Live events may have arrived while the history loaded: order all by
      // their place in the stream and rebuild the plots from that order.
      events.sort((a, b) => (b.stream_seq || 0) - (a.stream_seq || 0));
      verdicts.sort((a, b) => Date.parse(b.decided) - Date.parse(a.decided));
      for (const s of series.values()) s.points = [];
      for (let i = events.length - 1; i >= 0; i--) {
        const e = events[i];
        const s = series.get(e.agent + " " + e.stream);
        s.points.push({ score: e.score, kind: e.kind });
        if (s.points.length > MAX_POINTS) s.points.shift();
      }
      renderTables();
      renderPlots();
    } catch (e) { console.warn("history:", e); }
  }

  function setLive(state, text) {
    const s = $("live");
    s.className = "status " + state;
    s.dataset.state = state;
    s.textContent = text;
  }

  function connect() {
    setLive("connecting", "connecting…");
    const es = new EventSource("/api/v1/stream");
    let plotTimer = null;
    const plotSoon = () => { if (!plotTimer) plotTimer = setTimeout(() => { plotTimer = null; renderPlots(); }, 250); };
    es.onopen = () => setLive("live", "live");
    es.onerror = () => setLive("connecting", "reconnecting…");
    es.addEventListener("event", (m) => { if (addEvent(JSON.parse(m.data), true)) plotSoon(); });
    es.addEventListener("verdict", (m) => addVerdict(JSON.parse(m.data), true));
    es.addEventListener("heartbeat", (m) => {
      setLive("live", "live");
      $("heartbeat").textContent = "· heartbeat " + ts(JSON.parse(m.data).time);
    });
    es.addEventListener("dropped", (m) => {
      missed += JSON.parse(m.data).dropped;
      $("missed").textContent = "· " + missed + " live messages missed (this browser read too slowly)";
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    connect();
    loadHistory();
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();
