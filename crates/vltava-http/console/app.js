// Vltava web console: a dependency-free single-page app served by `vltava serve` on its HTTP
// port. It reads /status, the REST Proxy v3 API, /api/* (topics, messages, groups) and the Schema
// Registry through /api/registry/*. Pages are hash routes: #/, #/topics, #/topics/NAME,
// #/groups, #/groups/NAME, #/schemas, #/schemas/SUBJECT.
"use strict";

// ---------- small helpers ----------

const $main = document.getElementById("main");
const $banner = document.getElementById("banner");
const $dialog = document.getElementById("dialog");
const $conn = document.getElementById("conn");

/** Builds an element: h("td", {class: "num"}, "12", child, ...). Text is never parsed as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "testid") el.setAttribute("data-testid", v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const enc = encodeURIComponent;
const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + " " + u[i];
}

function fmtRate(n, unit) {
  if (!isFinite(n)) return "–";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M " + unit;
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k " + unit;
  return n.toFixed(n < 10 ? 1 : 0) + " " + unit;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** fetch + JSON, throwing ApiError with the server's message on a non-2xx answer. */
async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = path.startsWith("/api/registry") ? "application/vnd.schemaregistry.v1+json" : "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, `cannot reach Vltava's HTTP API: ${e.message}`);
  }
  const text = await resp.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (_) { data = text; } }
  if (!resp.ok) {
    const msg = (data && data.message) || (typeof data === "string" && data) || resp.statusText;
    throw new ApiError(resp.status, `${msg} (HTTP ${resp.status})`);
  }
  return data;
}

function showError(e) {
  $banner.replaceChildren(h("span", {}, e.message || String(e)),
    h("button", { onclick: () => $banner.classList.add("hidden") }, "Dismiss"));
  $banner.classList.remove("hidden");
}

function errorBox(e) { return h("div", { class: "error", testid: "error" }, e.message || String(e)); }
function loading(what) { return h("div", { class: "loading" }, "Loading " + what); }
function empty(text) { return h("div", { class: "empty", testid: "empty" }, text); }

/** A modal confirmation. With `typeToConfirm`, the OK button stays disabled until it is typed. */
function confirmDialog({ title, body, okText = "OK", danger = false, typeToConfirm = null }) {
  return new Promise((resolve) => {
    const input = typeToConfirm ? h("input", { testid: "confirm-input", placeholder: typeToConfirm, autocomplete: "off" }) : null;
    const ok = h("button", { class: danger ? "danger solid" : "primary", testid: "confirm-ok", disabled: !!typeToConfirm }, okText);
    const cancel = h("button", { testid: "confirm-cancel" }, "Cancel");
    if (input) input.addEventListener("input", () => { ok.disabled = input.value !== typeToConfirm; });
    const done = (v) => { $dialog.close(); resolve(v); };
    ok.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    $dialog.onclose = () => resolve(false);
    $dialog.replaceChildren(h("h3", {}, title), body || null,
      input ? h("p", {}, "Type ", h("b", { class: "mono" }, typeToConfirm), " to confirm:") : null, input,
      h("div", { class: "actions" }, cancel, ok));
    $dialog.showModal();
    (input || cancel).focus();
  });
}

/** A line chart of several series over time: series = [{name, color, points: [[t, v], ...]}]. */
function lineChart(series, { height = 160, format = (v) => fmtInt(v) } = {}) {
  const W = 600, H = height, L = 56, R = 8, T = 8, B = 18;
  const all = series.flatMap((s) => s.points);
  const el = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "data-testid": "chart" });
  if (all.length < 2) {
    el.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "collecting samples…"));
    return el;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (vmax * i) / 4;
    el.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    el.append(svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end", class: "axis" }, format(v)));
  }
  el.append(svg("text", { x: L, y: H - 4, class: "axis" }, new Date(t0).toLocaleTimeString()));
  el.append(svg("text", { x: W - R, y: H - 4, "text-anchor": "end", class: "axis" }, new Date(t1).toLocaleTimeString()));
  for (const s of series) {
    if (s.points.length < 2) continue;
    el.append(svg("polyline", {
      points: s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
      fill: "none", stroke: s.color, "stroke-width": 2, "vector-effect": "non-scaling-stroke",
    }));
  }
  return el;
}

function legend(series) {
  return h("div", { class: "legend" }, series.map((s) => h("span", {}, h("i", { style: `background:${s.color}` }), s.name)));
}

function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((c) => (typeof c === "string" ? h("th", {}, c) : h("th", c.attrs || {}, c.text))))),
    h("tbody", {}, rows));
}

// ---------- shared state: status polling and throughput history ----------

const HISTORY_POINTS = 90;
const state = { status: null, clusterId: null, throughput: [], lastTotals: null };

async function clusterId() {
  if (!state.clusterId) {
    const c = await api("GET", "/v3/clusters");
    state.clusterId = c.data[0].cluster_id;
  }
  return state.clusterId;
}

async function pollStatus() {
  try {
    const s = await api("GET", "/status");
    state.status = s;
    const now = Date.now();
    if (s.totals) {
      const t = s.totals;
      if (state.lastTotals) {
        const dt = (now - state.lastTotals.at) / 1000;
        if (dt > 0) {
          state.throughput.push({
            at: now,
            in_bytes: Math.max(0, (t.bytes_in - state.lastTotals.bytes_in) / dt),
            out_bytes: Math.max(0, (t.bytes_out - state.lastTotals.bytes_out) / dt),
            in_records: Math.max(0, (t.records_in - state.lastTotals.records_in) / dt),
            out_records: Math.max(0, (t.records_out - state.lastTotals.records_out) / dt),
          });
          if (state.throughput.length > HISTORY_POINTS) state.throughput.shift();
        }
      }
      state.lastTotals = { ...t, at: now };
    }
    $conn.textContent = s.kafka === "connected" ? "broker connected" : "broker not connected";
    $conn.className = "conn " + (s.kafka === "connected" ? "ok" : "bad");
  } catch (e) {
    $conn.textContent = "HTTP API unreachable";
    $conn.className = "conn bad";
  }
}

// ---------- router ----------

let routeGen = 0;
const timers = [];

function every(ms, fn) {
  const gen = routeGen;
  const id = setInterval(() => { if (gen === routeGen) fn(); }, ms);
  timers.push(id);
}

function current(gen) { return gen === routeGen; }

async function route() {
  routeGen++;
  while (timers.length) clearInterval(timers.pop());
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("?")[0].split("/").filter(Boolean).map(decodeURIComponent);
  const section = parts[0] || "overview";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.nav === section);
  $main.replaceChildren(loading("page"));
  try {
    if (section === "overview") await overviewPage();
    else if (section === "topics" && parts.length === 1) await topicsPage();
    else if (section === "topics") await topicPage(parts[1], parts[2] || "messages");
    else if (section === "groups" && parts.length === 1) await groupsPage();
    else if (section === "groups") await groupPage(parts[1]);
    else if (section === "schemas" && parts.length === 1) await schemasPage();
    else if (section === "schemas") await subjectPage(parts[1]);
    else $main.replaceChildren(h("h1", {}, "Not found"), empty(`No page at #${hash}`));
  } catch (e) {
    $main.replaceChildren(h("h1", {}, "Something went wrong"), errorBox(e));
  }
}

// ---------- overview ----------

async function overviewPage() {
  const gen = routeGen;
  await pollStatus();
  const root = h("div", { testid: "overview" });
  const render = () => {
    const s = state.status;
    if (!s) { root.replaceChildren(errorBox(new Error("Vltava's status is not available"))); return; }
    const totalLag = s.groups.reduce((a, g) => a + (g.total_lag || 0), 0);
    const last = state.throughput[state.throughput.length - 1] || { in_records: 0, out_records: 0, in_bytes: 0, out_bytes: 0 };
    const series = [
      { name: "produced records/s", color: "#1f6feb", points: state.throughput.map((p) => [p.at, p.in_records]) },
      { name: "consumed records/s", color: "#2da44e", points: state.throughput.map((p) => [p.at, p.out_records]) },
    ];
    root.replaceChildren(
      h("h1", {}, "Overview"),
      h("div", { class: "cards" },
        card("Node", `${s.node_id} · v${s.version}`),
        card("Bootstrap", s.bootstrap, "bootstrap", true),
        card("Topics", fmtInt(s.topics.length), "topic-count"),
        card("Consumer groups", fmtInt(s.groups.length), "group-count"),
        card("Total lag", fmtInt(totalLag), "total-lag"),
        card("Uptime", fmtDuration(s.uptime_ms)),
      ),
      h("div", { class: "panel" },
        h("h2", {}, "Throughput ",
          h("span", { class: "muted", testid: "throughput-now" },
            `in ${fmtRate(last.in_records, "rec/s")} (${fmtBytes(last.in_bytes)}/s) · out ${fmtRate(last.out_records, "rec/s")} (${fmtBytes(last.out_bytes)}/s)`)),
        lineChart(series, { format: (v) => fmtRate(v, "") }), legend(series)),
      h("div", { class: "grid2" },
        h("div", { class: "panel" }, h("h2", {}, "Listeners"),
          table(["Name", "Bootstrap"], s.listeners.map((l) => h("tr", {}, h("td", {}, l.name), h("td", { class: "mono" }, l.bootstrap))))),
        h("div", { class: "panel" }, h("h2", {}, "Consumer groups"),
          s.groups.length === 0 ? empty("No consumer groups yet.") :
            table(["Group", "State", { text: "Lag", attrs: { class: "num" } }], s.groups.map((g) =>
              h("tr", {}, h("td", {}, h("a", { href: `#/groups/${enc(g.group)}` }, g.group)), h("td", {}, stateBadge(g.state)),
                h("td", { class: "num" }, fmtInt(g.total_lag))))))),
      h("div", { class: "panel" }, h("h2", {}, "Topics"),
        s.topics.length === 0 ? empty("No topics yet.") :
          table(["Topic", { text: "Partitions", attrs: { class: "num" } }, { text: "Records", attrs: { class: "num" } }, { text: "Size", attrs: { class: "num" } }],
            s.topics.slice(0, 20).map((t) => h("tr", {}, h("td", {}, h("a", { href: `#/topics/${enc(t.name)}` }, t.name)),
              h("td", { class: "num" }, t.partitions), h("td", { class: "num" }, fmtInt(t.records)), h("td", { class: "num" }, fmtBytes(t.size_bytes)))))),
    );
  };
  render();
  $main.replaceChildren(root);
  every(2000, () => { if (current(gen)) render(); });
}

function card(label, value, testid, small) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" + (small ? " small" : ""), testid }, value));
}

function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function stateBadge(st) {
  const cls = st === "Stable" ? "ok" : st === "Empty" ? "" : st === "Dead" ? "bad" : "warn";
  return h("span", { class: "badge " + cls, testid: "group-state" }, st);
}

// ---------- topics ----------

async function topicsPage() {
  const gen = routeGen;
  const s = await api("GET", "/status");
  if (!current(gen)) return;
  const search = h("input", { type: "search", placeholder: "Search topics", testid: "topic-search", "aria-label": "Search topics" });
  const showInternal = h("input", { type: "checkbox", testid: "show-internal" });
  const body = h("div");
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const topics = s.topics.filter((t) => (showInternal.checked || !t.name.startsWith("_")) && t.name.toLowerCase().includes(q));
    body.replaceChildren(topics.length === 0 ? empty(s.topics.length === 0 ? "No topics yet. Create one, or produce to a new name." : "No topic matches.") :
      table(["Topic", { text: "Partitions", attrs: { class: "num" } }, { text: "Records", attrs: { class: "num" } }, { text: "Size", attrs: { class: "num" } }],
        topics.map((t) => h("tr", { "data-topic": t.name },
          h("td", {}, h("a", { href: `#/topics/${enc(t.name)}`, testid: "topic-link" }, t.name)),
          h("td", { class: "num" }, t.partitions), h("td", { class: "num" }, fmtInt(t.records)), h("td", { class: "num" }, fmtBytes(t.size_bytes)))),
        { testid: "topics-table" }));
  };
  search.addEventListener("input", render);
  showInternal.addEventListener("change", render);
  render();
  $main.replaceChildren(
    h("h1", {}, "Topics", h("button", { class: "primary", testid: "create-topic-open", onclick: () => createTopicDialog() }, "Create topic")),
    h("div", { class: "row" }, search, h("label", {}, showInternal, " show internal topics")),
    h("div", { class: "panel" }, body));
  search.focus();
}

function parseKv(text) {
  const out = [];
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const i = line.indexOf("=");
    if (i <= 0) throw new Error(`'${line}' is not name=value`);
    out.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return out;
}

function createTopicDialog() {
  const name = h("input", { testid: "new-topic-name", placeholder: "orders", required: true });
  const parts = h("input", { type: "number", min: 1, value: "1", testid: "new-topic-partitions" });
  const configs = h("textarea", { testid: "new-topic-configs", placeholder: "retention.ms=604800000\ncleanup.policy=delete" });
  const err = h("div", { class: "error", testid: "create-topic-error" });
  const submit = h("button", { class: "primary", testid: "create-topic-submit" }, "Create");
  const cancel = h("button", { onclick: () => $dialog.close() }, "Cancel");
  submit.addEventListener("click", async () => {
    err.textContent = "";
    try {
      if (!name.value.trim()) throw new Error("A topic needs a name.");
      const cfg = parseKv(configs.value).map(([n, v]) => ({ name: n, value: v }));
      submit.disabled = true;
      const id = await clusterId();
      await api("POST", `/v3/clusters/${enc(id)}/topics`, { topic_name: name.value.trim(), partitions_count: Number(parts.value), configs: cfg });
      $dialog.close();
      location.hash = `#/topics/${enc(name.value.trim())}`;
    } catch (e) {
      err.textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });
  $dialog.onclose = null;
  $dialog.replaceChildren(h("h3", {}, "Create topic"),
    h("div", { class: "row" }, h("label", { class: "field" }, "Name", name), h("label", { class: "field" }, "Partitions", parts)),
    h("label", { class: "field" }, "Configs (name=value per line, optional)", configs), err,
    h("div", { class: "actions" }, cancel, submit));
  $dialog.showModal();
  name.focus();
}

async function topicPage(name, tab) {
  const gen = routeGen;
  const t = await api("GET", `/api/topics/${enc(name)}`);
  if (!current(gen)) return;
  const tabs = ["messages", "partitions", "configs", "produce"];
  const del = h("button", { class: "danger", testid: "delete-topic" }, "Delete topic");
  del.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Delete topic ${name}?`, danger: true, okText: "Delete topic", typeToConfirm: name,
      body: h("p", {}, `All ${fmtInt(t.records)} records of its ${t.partitions.length} partitions are deleted. This cannot be undone.`),
    });
    if (!ok) return;
    try {
      await api("DELETE", `/v3/clusters/${enc(await clusterId())}/topics/${enc(name)}`);
      location.hash = "#/topics";
    } catch (e) { showError(e); }
  });
  const content = h("div");
  $main.replaceChildren(
    h("h1", {}, h("a", { href: "#/topics" }, "Topics"), " / ", h("span", { testid: "topic-name" }, name),
      h("span", { class: "badge" }, `${t.partitions.length} partitions`), h("span", { class: "badge", testid: "topic-records" }, `${fmtInt(t.records)} records`),
      h("span", { style: "margin-left:auto" }, del)),
    h("nav", { class: "tabs" }, tabs.map((x) => h("a", { href: `#/topics/${enc(name)}/${x}`, class: x === tab ? "active" : "", testid: `tab-${x}` }, x[0].toUpperCase() + x.slice(1)))),
    content);
  if (tab === "partitions") content.replaceChildren(partitionsPanel(t));
  else if (tab === "configs") content.replaceChildren(configsPanel(name, t));
  else if (tab === "produce") content.replaceChildren(producePanel(name, t));
  else content.replaceChildren(browserPanel(name, t));
}

function partitionsPanel(t) {
  return h("div", { class: "panel" }, table(
    ["Partition", "Leader", { text: "Earliest offset", attrs: { class: "num" } }, { text: "Latest offset", attrs: { class: "num" } }, { text: "Records", attrs: { class: "num" } }],
    t.partitions.map((p) => h("tr", {}, h("td", {}, p.partition), h("td", {}, p.leader), h("td", { class: "num" }, fmtInt(p.earliest_offset)),
      h("td", { class: "num" }, fmtInt(p.latest_offset)), h("td", { class: "num" }, fmtInt(p.records)))),
    { testid: "partitions-table" }));
}

function configsPanel(name, t) {
  const msg = h("div");
  const rows = t.configs.map((c) => {
    const input = h("input", { value: c.sensitive ? "" : (c.value ?? ""), disabled: c.read_only, "aria-label": c.name, testid: `config-${c.name}`, style: "width:100%" });
    const save = h("button", { disabled: c.read_only, testid: `config-save-${c.name}` }, "Save");
    const reset = h("button", { disabled: c.read_only || !c.is_override, title: "Remove the topic's override (back to the default)" }, "Reset");
    save.addEventListener("click", async () => {
      try {
        await api("POST", `/api/topics/${enc(name)}/configs`, { set: { [c.name]: input.value } });
        msg.replaceChildren(h("div", { class: "success", testid: "config-saved" }, `${c.name} set to ${input.value}`));
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    });
    reset.addEventListener("click", async () => {
      try {
        await api("POST", `/api/topics/${enc(name)}/configs`, { delete: [c.name] });
        route();
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    });
    return h("tr", {}, h("td", { class: "mono" }, c.name), h("td", {}, input),
      h("td", { class: "hide-narrow" }, h("span", { class: "badge" + (c.is_override ? " ok" : "") }, c.is_override ? "topic" : c.source.toLowerCase().replaceAll("_", " "))),
      h("td", {}, save, " ", reset));
  });
  return h("div", { class: "panel" }, msg, table(["Config", "Value", { text: "Source", attrs: { class: "hide-narrow" } }, ""], rows, { testid: "configs-table" }));
}

function producePanel(name, t) {
  const partition = h("select", { testid: "produce-partition" }, h("option", { value: "" }, "by key (default partitioner)"),
    t.partitions.map((p) => h("option", { value: p.partition }, `partition ${p.partition}`)));
  const key = h("input", { testid: "produce-key", placeholder: "key (optional)" });
  const kind = h("select", { testid: "produce-type" }, h("option", { value: "JSON" }, "JSON"), h("option", { value: "STRING" }, "text"));
  const value = h("textarea", { testid: "produce-value", placeholder: '{"hello": "world"}' });
  const headers = h("textarea", { testid: "produce-headers", placeholder: "name=value per line (optional)", style: "min-height:50px" });
  const result = h("div");
  const send = h("button", { class: "primary", testid: "produce-send" }, "Produce");
  send.addEventListener("click", async () => {
    result.replaceChildren();
    try {
      let data = value.value;
      if (kind.value === "JSON") {
        try { data = JSON.parse(value.value); } catch (e) { throw new Error(`The value is not JSON: ${e.message}. Choose "text" to send it as it is.`); }
      }
      const rec = { value: { type: kind.value, data } };
      if (key.value !== "") rec.key = { type: "STRING", data: key.value };
      if (partition.value !== "") rec.partition_id = Number(partition.value);
      const hs = parseKv(headers.value);
      if (hs.length) rec.headers = hs.map(([n, v]) => ({ name: n, value: btoa(unescape(encodeURIComponent(v))) }));
      send.disabled = true;
      const r = await api("POST", `/v3/clusters/${enc(await clusterId())}/topics/${enc(name)}/records`, rec);
      result.replaceChildren(h("div", { class: "success", testid: "produce-result" }, `Produced to partition ${r.partition_id} at offset ${r.offset}.`));
    } catch (e) { result.replaceChildren(errorBox(e)); } finally { send.disabled = false; }
  });
  return h("div", { class: "panel" },
    h("div", { class: "row" }, h("label", { class: "field" }, "Partition", partition), h("label", { class: "field" }, "Key", key), h("label", { class: "field" }, "Value type", kind)),
    h("label", { class: "field" }, "Value", value), h("label", { class: "field" }, "Headers", headers),
    h("div", { class: "row", style: "margin-top:10px" }, send), result);
}

function browserPanel(name, t) {
  const partition = h("select", { testid: "browse-partition" }, h("option", { value: "" }, "all partitions"),
    t.partitions.map((p) => h("option", { value: p.partition }, `partition ${p.partition}`)));
  const from = h("select", { testid: "browse-from" }, h("option", { value: "newest" }, "newest"), h("option", { value: "oldest" }, "oldest"),
    h("option", { value: "offset" }, "from offset"), h("option", { value: "time" }, "from time"));
  const offset = h("input", { type: "number", min: 0, value: "0", testid: "browse-offset", style: "width:110px" });
  const time = h("input", { type: "datetime-local", testid: "browse-time", step: 1 });
  const limit = h("select", { testid: "browse-limit" }, [20, 50, 100, 200, 500].map((n) => h("option", { value: n, selected: n === 50 }, n)));
  const key = h("input", { type: "search", placeholder: "key contains", testid: "browse-key" });
  const value = h("input", { type: "search", placeholder: "value contains", testid: "browse-value" });
  const header = h("input", { type: "search", placeholder: "header name[=text]", testid: "browse-header" });
  const format = h("select", { testid: "browse-format" }, ["auto", "json", "text", "hex"].map((f) => h("option", { value: f }, f === "auto" ? "decode: auto (registry)" : f)));
  const offsetField = h("label", { class: "field" }, "Offset", offset);
  const timeField = h("label", { class: "field" }, "Time", time);
  const showFields = () => {
    offsetField.classList.toggle("hidden", from.value !== "offset");
    timeField.classList.toggle("hidden", from.value !== "time");
  };
  from.addEventListener("change", showFields);
  showFields();
  const out = h("div");
  const run = h("button", { class: "primary", testid: "browse-run" }, "Show messages");
  const go = async () => {
    const q = new URLSearchParams({ from: from.value, limit: limit.value, format: format.value });
    if (partition.value !== "") q.set("partition", partition.value);
    if (from.value === "offset") q.set("offset", offset.value || "0");
    if (from.value === "time") {
      if (!time.value) { out.replaceChildren(errorBox(new Error("Pick a time to start from."))); return; }
      q.set("time", String(new Date(time.value).getTime()));
    }
    if (key.value) q.set("key", key.value);
    if (value.value) q.set("value", value.value);
    if (header.value) q.set("header", header.value);
    out.replaceChildren(loading("messages"));
    run.disabled = true;
    try {
      const r = await api("GET", `/api/topics/${enc(name)}/messages?${q}`);
      out.replaceChildren(messagesTable(r));
    } catch (e) { out.replaceChildren(errorBox(e)); } finally { run.disabled = false; }
  };
  run.addEventListener("click", go);
  for (const i of [key, value, header, offset]) i.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  const panel = h("div", { class: "panel" },
    h("div", { class: "row" }, h("label", { class: "field" }, "Partition", partition), h("label", { class: "field" }, "Start", from), offsetField, timeField,
      h("label", { class: "field" }, "Limit", limit), h("label", { class: "field" }, "Show as", format)),
    h("div", { class: "row" }, h("label", { class: "field" }, "Key", key), h("label", { class: "field" }, "Value", value), h("label", { class: "field" }, "Header", header), run),
    out);
  go();
  return panel;
}

function renderData(d) {
  if (!d || d.format === "null") return h("span", { class: "muted" }, "null");
  const badge = h("span", { class: "badge", testid: "format" }, d.format + (d.schema_id !== undefined ? ` #${d.schema_id}` : ""));
  const text = typeof d.data === "string" ? d.data : JSON.stringify(d.data, null, 2);
  return h("div", {}, badge, d.error ? h("span", { class: "muted" }, " " + d.error) : null, d.truncated ? h("span", { class: "muted" }, " (truncated)") : null,
    h("pre", { testid: "data" }, text));
}

function messagesTable(r) {
  const note = h("div", { class: "muted", style: "margin-bottom:6px" }, `${r.messages.length} shown, ${fmtInt(r.scanned)} read in ${r.elapsed_ms} ms`,
    r.complete ? "" : " (stopped early: narrow the range to see more)");
  if (r.messages.length === 0) return h("div", {}, note, empty("No messages match."));
  return h("div", {}, note, table(["Partition", "Offset", "Timestamp", "Key", "Value", { text: "Headers", attrs: { class: "hide-narrow" } }],
    r.messages.map((m) => h("tr", { testid: "message-row", "data-partition": m.partition, "data-offset": m.offset },
      h("td", { class: "num" }, m.partition), h("td", { class: "num" }, m.offset),
      h("td", { class: "mono", title: String(m.timestamp_ms) }, m.timestamp ? m.timestamp.replace("T", " ").replace("Z", "") : "–"),
      h("td", { testid: "message-key" }, renderData(m.key)), h("td", { testid: "message-value" }, renderData(m.value)),
      h("td", { class: "hide-narrow mono" }, m.headers.map((x) => h("div", {}, `${x.name}=${x.value ?? "null"}`))))),
    { testid: "messages-table" }));
}

// ---------- consumer groups ----------

async function groupsPage() {
  const gen = routeGen;
  const body = h("div", { class: "panel" }, loading("groups"));
  $main.replaceChildren(h("h1", {}, "Consumer groups"), body);
  const render = async () => {
    const s = await api("GET", "/status");
    if (!current(gen)) return;
    body.replaceChildren(s.groups.length === 0 ? empty("No consumer groups yet: they appear when a consumer joins or commits.") :
      table(["Group", "State", "Type", { text: "Members", attrs: { class: "num" } }, { text: "Lag", attrs: { class: "num" } }],
        s.groups.map((g) => h("tr", { "data-group": g.group },
          h("td", {}, h("a", { href: `#/groups/${enc(g.group)}`, testid: "group-link" }, g.group)), h("td", {}, stateBadge(g.state)),
          h("td", {}, g.type || "classic"), h("td", { class: "num" }, g.members), h("td", { class: "num", testid: "group-lag" }, fmtInt(g.total_lag)))),
        { testid: "groups-table" }));
  };
  await render();
  every(3000, () => render().catch(showError));
}

const lagHistory = new Map();

async function groupPage(name) {
  const gen = routeGen;
  const hist = lagHistory.get(name) || [];
  lagHistory.set(name, hist);
  const head = h("div");
  const members = h("div", { class: "panel" });
  const parts = h("div", { class: "panel" });
  const chart = h("div", { class: "panel" });
  const del = h("button", { class: "danger", testid: "delete-group" }, "Delete group");
  del.addEventListener("click", async () => {
    const ok = await confirmDialog({ title: `Delete group ${name}?`, danger: true, okText: "Delete group", typeToConfirm: name,
      body: h("p", {}, "Its committed offsets are deleted; its consumers will start from auto.offset.reset next time. Only groups with no active members can be deleted.") });
    if (!ok) return;
    try { await api("DELETE", `/api/groups/${enc(name)}`); location.hash = "#/groups"; } catch (e) { showError(e); }
  });
  let last = null;
  const render = async () => {
    let g;
    try { g = await api("GET", `/api/groups/${enc(name)}`); } catch (e) { if (current(gen)) head.replaceChildren(errorBox(e)); return; }
    if (!current(gen)) return;
    last = g;
    hist.push([Date.now(), g.total_lag]);
    if (hist.length > HISTORY_POINTS) hist.shift();
    head.replaceChildren(h("div", { class: "cards" }, card("State", stateBadge(g.state)), card("Members", fmtInt(g.members.length)),
      card("Total lag", fmtInt(g.total_lag), "group-total-lag"), card("Protocol", `${g.type || "classic"} ${g.protocol || ""}`)));
    members.replaceChildren(h("h2", {}, "Members"), g.members.length === 0 ? empty("No active members.") :
      table(["Member", "Client", "Host", "Assignment"], g.members.map((m) => h("tr", {}, h("td", { class: "mono" }, m.instance_id || m.member_id),
        h("td", {}, m.client_id), h("td", { class: "mono" }, m.host), h("td", { class: "mono" }, m.assignment.map((a) => `${a.topic}-${a.partition}`).join(", "))))));
    parts.replaceChildren(h("h2", {}, "Lag per partition"), g.partitions.length === 0 ? empty("No committed offsets.") :
      table(["Topic", "Partition", { text: "Committed", attrs: { class: "num" } }, { text: "Log end", attrs: { class: "num" } }, { text: "Lag", attrs: { class: "num" } }, "Member"],
        g.partitions.map((p) => h("tr", { testid: "lag-row", "data-topic": p.topic, "data-partition": p.partition },
          h("td", {}, h("a", { href: `#/topics/${enc(p.topic)}` }, p.topic)), h("td", {}, p.partition),
          h("td", { class: "num", testid: "committed" }, fmtInt(p.current_offset)), h("td", { class: "num" }, fmtInt(p.log_end_offset)),
          h("td", { class: "num", testid: "lag" }, fmtInt(p.lag)), h("td", { class: "mono" }, p.client_id || ""))),
        { testid: "lag-table" }));
    const series = [{ name: "total lag", color: "#d4731f", points: hist }];
    chart.replaceChildren(h("h2", {}, "Lag over time"), lineChart(series, { height: 120 }), legend(series));
  };
  $main.replaceChildren(h("h1", {}, h("a", { href: "#/groups" }, "Consumer groups"), " / ", h("span", { testid: "group-name" }, name), h("span", { style: "margin-left:auto" }, del)),
    head, chart, members, parts, resetPanel(name, () => last, render));
  await render();
  every(2000, render);
}

function resetPanel(group, lastGroup, refresh) {
  const topic = h("select", { testid: "reset-topic" }, h("option", { value: "" }, "all committed partitions"));
  const to = h("select", { testid: "reset-to" }, [["earliest", "earliest offset"], ["latest", "latest offset"], ["offset", "a given offset"],
    ["time", "a point in time"], ["shift", "shift by N"]].map(([v, t]) => h("option", { value: v }, t)));
  const val = h("input", { testid: "reset-value", placeholder: "", style: "width:180px" });
  const valField = h("label", { class: "field" }, "Value", val);
  const out = h("div", { testid: "reset-result" });
  const preview = h("button", { testid: "reset-preview" }, "Preview (dry run)");
  const apply = h("button", { class: "danger solid", testid: "reset-apply", disabled: true }, "Apply reset");
  const fillTopics = () => {
    const g = lastGroup();
    if (!g) return;
    const have = new Set([...topic.options].map((o) => o.value));
    for (const t of new Set(g.partitions.map((p) => p.topic))) if (!have.has(t)) topic.append(h("option", { value: t }, t));
  };
  const showVal = () => {
    valField.classList.toggle("hidden", ["earliest", "latest"].includes(to.value));
    val.type = to.value === "time" ? "datetime-local" : "number";
    apply.disabled = true;
  };
  to.addEventListener("change", showVal);
  topic.addEventListener("focus", fillTopics);
  topic.addEventListener("change", () => { apply.disabled = true; });
  val.addEventListener("input", () => { apply.disabled = true; });
  showVal();
  const request = (execute) => {
    const body = { to: to.value, execute };
    if (topic.value) body.topics = [{ topic: topic.value }]; else body.all_topics = true;
    if (to.value === "time") body.value = val.value ? new Date(val.value).getTime() : null;
    else if (!["earliest", "latest"].includes(to.value)) body.value = val.value;
    return api("POST", `/api/groups/${enc(group)}/reset`, body);
  };
  const planTable = (r) => table(["Topic", "Partition", { text: "Current", attrs: { class: "num" } }, { text: "New", attrs: { class: "num" } }],
    r.partitions.map((p) => h("tr", { testid: "reset-row" }, h("td", {}, p.topic), h("td", {}, p.partition), h("td", { class: "num" }, fmtInt(p.current_offset)),
      h("td", { class: "num", testid: "reset-new" }, fmtInt(p.new_offset)))));
  preview.addEventListener("click", async () => {
    out.replaceChildren(loading("plan"));
    try {
      const r = await request(false);
      out.replaceChildren(h("div", { class: "muted", testid: "reset-dry-run" }, "Dry run: nothing has changed yet. Apply to commit these offsets."), planTable(r));
      apply.disabled = false;
    } catch (e) { out.replaceChildren(errorBox(e)); apply.disabled = true; }
  });
  apply.addEventListener("click", async () => {
    const ok = await confirmDialog({ title: `Reset offsets of ${group}?`, okText: "Reset offsets", danger: true,
      body: h("p", {}, "The group's committed offsets are overwritten with the previewed ones. Its consumers must be stopped.") });
    if (!ok) return;
    try {
      const r = await request(true);
      out.replaceChildren(h("div", { class: "success", testid: "reset-done" }, `Offsets reset on ${r.partitions.length} partition(s).`), planTable(r));
      apply.disabled = true;
      refresh();
    } catch (e) { out.replaceChildren(errorBox(e)); }
  });
  return h("div", { class: "panel", testid: "reset-panel" }, h("h2", {}, "Reset offsets"),
    h("p", { class: "muted" }, "Preview the new offsets first; the group must have no active members to apply them."),
    h("div", { class: "row" }, h("label", { class: "field" }, "Partitions", topic), h("label", { class: "field" }, "Move to", to), valField, preview, apply), out);
}

// ---------- schemas ----------

async function schemasPage() {
  const gen = routeGen;
  let subjects;
  try { subjects = await api("GET", "/api/registry/subjects"); } catch (e) {
    $main.replaceChildren(h("h1", {}, "Schemas"), errorBox(e)); return;
  }
  let global = null;
  try { global = await api("GET", "/api/registry/config"); } catch (_) { /* shown as unknown */ }
  if (!current(gen)) return;
  const search = h("input", { type: "search", placeholder: "Search subjects", testid: "subject-search" });
  const body = h("div");
  const render = () => {
    const q = search.value.toLowerCase();
    const list = subjects.filter((s) => s.toLowerCase().includes(q)).sort();
    body.replaceChildren(list.length === 0 ? empty(subjects.length === 0 ? "No schemas registered yet." : "No subject matches.") :
      table(["Subject"], list.map((s) => h("tr", {}, h("td", {}, h("a", { href: `#/schemas/${enc(s)}`, testid: "subject-link" }, s)))), { testid: "subjects-table" }));
  };
  search.addEventListener("input", render);
  render();
  const newSubject = h("input", { testid: "new-subject", placeholder: "orders-value" });
  const open = h("button", { class: "primary", testid: "new-subject-open" }, "New subject");
  open.addEventListener("click", () => { if (newSubject.value.trim()) location.hash = `#/schemas/${enc(newSubject.value.trim())}`; });
  $main.replaceChildren(h("h1", {}, "Schemas", h("span", { class: "badge" }, `global compatibility: ${global ? global.compatibilityLevel : "unknown"}`)),
    h("div", { class: "row" }, search, h("span", { style: "margin-left:auto" }), newSubject, open), h("div", { class: "panel" }, body));
}

function prettySchema(v) {
  if ((v.schemaType || "AVRO") === "PROTOBUF") return v.schema;
  try { return JSON.stringify(JSON.parse(v.schema), null, 2); } catch (_) { return v.schema; }
}

/** Line diff (longest common subsequence): [{op: " "|"+"|"-", line}]. */
function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: " ", line: x[i] }); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: "-", line: x[i++] }); else out.push({ op: "+", line: y[j++] });
  }
  while (i < n) out.push({ op: "-", line: x[i++] });
  while (j < m) out.push({ op: "+", line: y[j++] });
  return out;
}

async function subjectPage(subject) {
  const gen = routeGen;
  let versions = [];
  try { versions = await api("GET", `/api/registry/subjects/${enc(subject)}/versions`); } catch (e) { if (e.status !== 404) throw e; }
  const details = await Promise.all(versions.map((v) => api("GET", `/api/registry/subjects/${enc(subject)}/versions/${v}`)));
  let compat = null;
  try { compat = await api("GET", `/api/registry/config/${enc(subject)}?defaultToGlobal=true`); } catch (_) { /* unknown */ }
  if (!current(gen)) return;
  const latest = details[details.length - 1];

  const level = h("select", { testid: "compat-level" }, ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"]
    .map((l) => h("option", { value: l, selected: compat && compat.compatibilityLevel === l }, l)));
  const levelMsg = h("span");
  level.addEventListener("change", async () => {
    try { await api("PUT", `/api/registry/config/${enc(subject)}`, { compatibility: level.value }); levelMsg.replaceChildren(h("span", { class: "success" }, " saved")); } catch (e) { levelMsg.replaceChildren(errorBox(e)); }
  });

  const versionsPanel = h("div", { class: "panel" });
  if (details.length === 0) versionsPanel.replaceChildren(empty("No versions yet: register the first one below."));
  else {
    const a = h("select", { testid: "diff-from" }, details.map((d) => h("option", { value: d.version, selected: d === details[Math.max(0, details.length - 2)] }, `v${d.version}`)));
    const b = h("select", { testid: "diff-to" }, details.map((d) => h("option", { value: d.version, selected: d === latest }, `v${d.version}`)));
    const view = h("div");
    const show = () => {
      const da = details.find((d) => String(d.version) === a.value), db = details.find((d) => String(d.version) === b.value);
      if (da === db) { view.replaceChildren(h("div", { class: "muted" }, `v${da.version} · id ${da.id} · ${da.schemaType || "AVRO"}`), h("pre", { testid: "schema-text" }, prettySchema(da))); return; }
      const lines = diffLines(prettySchema(da), prettySchema(db));
      view.replaceChildren(h("div", { class: "muted" }, `v${da.version} (id ${da.id}) → v${db.version} (id ${db.id})`),
        h("div", { class: "diff", testid: "schema-diff" }, lines.map((l) => h("div", { class: l.op === "+" ? "add" : l.op === "-" ? "del" : "" }, `${l.op} ${l.line}`))));
    };
    a.addEventListener("change", show);
    b.addEventListener("change", show);
    show();
    versionsPanel.replaceChildren(h("h2", {}, "Versions"),
      table(["Version", "Id", "Type"], details.map((d) => h("tr", { testid: "version-row" }, h("td", {}, `v${d.version}`), h("td", {}, d.id), h("td", {}, d.schemaType || "AVRO")))),
      h("div", { class: "row", style: "margin-top:10px" }, h("label", { class: "field" }, "Compare", a), h("label", { class: "field" }, "with", b)), view);
  }

  const type = h("select", { testid: "register-type" }, ["AVRO", "JSON", "PROTOBUF"].map((t) => h("option", { value: t, selected: latest && (latest.schemaType || "AVRO") === t }, t)));
  const text = h("textarea", { testid: "register-schema", style: "min-height:200px" });
  text.value = latest ? prettySchema(latest) : "";
  const result = h("div", { testid: "register-result" });
  const payload = () => {
    const p = { schema: text.value };
    if (type.value !== "AVRO") p.schemaType = type.value;
    if (latest && latest.references && latest.references.length) p.references = latest.references;
    return p;
  };
  const check = h("button", { testid: "register-check", disabled: !latest }, "Check compatibility");
  check.addEventListener("click", async () => {
    try {
      const r = await api("POST", `/api/registry/compatibility/subjects/${enc(subject)}/versions/latest?verbose=true`, payload());
      result.replaceChildren(r.is_compatible ? h("div", { class: "success", testid: "compat-ok" }, "Compatible with the latest version.")
        : h("div", { class: "error", testid: "compat-bad" }, "Not compatible:\n" + (r.messages || []).join("\n")));
    } catch (e) { result.replaceChildren(errorBox(e)); }
  });
  const register = h("button", { class: "primary", testid: "register-submit" }, "Register new version");
  register.addEventListener("click", async () => {
    result.replaceChildren(loading("registration"));
    try {
      let compatNote = null;
      if (latest) {
        const c = await api("POST", `/api/registry/compatibility/subjects/${enc(subject)}/versions/latest?verbose=true`, payload());
        compatNote = c.is_compatible ? "compatible with the latest version" : "not compatible: " + (c.messages || []).join("; ");
        if (!c.is_compatible) { result.replaceChildren(h("div", { class: "error", testid: "compat-bad" }, `Not registered: ${compatNote}`)); return; }
      }
      const r = await api("POST", `/api/registry/subjects/${enc(subject)}/versions`, payload());
      result.replaceChildren(h("div", { class: "success", testid: "register-ok" }, `Registered: schema id ${r.id}${compatNote ? " (" + compatNote + ")" : ""}.`));
      setTimeout(() => { if (current(gen)) route(); }, 1200);
    } catch (e) { result.replaceChildren(errorBox(e)); }
  });
  $main.replaceChildren(
    h("h1", {}, h("a", { href: "#/schemas" }, "Schemas"), " / ", h("span", { testid: "subject-name" }, subject)),
    h("div", { class: "panel" }, h("div", { class: "row" }, h("label", { class: "field" }, "Compatibility level", level), levelMsg)),
    versionsPanel,
    h("div", { class: "panel" }, h("h2", {}, latest ? "Register a new version" : "Register the first version"),
      h("div", { class: "row" }, h("label", { class: "field" }, "Type", type)), text,
      h("div", { class: "row", style: "margin-top:10px" }, check, register), result));
}

// ---------- start ----------

window.addEventListener("hashchange", route);
pollStatus();
setInterval(pollStatus, 2000);
route();
