// GlobalFunc console: plain JavaScript, no dependencies. Every data request carries the
// API token (kept in this tab's sessionStorage) as "Authorization: Bearer <token>".
"use strict";
const $ = (id) => document.getElementById(id);
let current = null;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = sessionStorage.getItem("gf-token");
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let body;
  try { body = JSON.parse(text); } catch (e) { body = { message: text }; }
  if (resp.status === 401) {
    status("This server needs its API token: enter it above.");
    throw new Error("unauthorized");
  }
  if (!resp.ok) {
    const err = new Error((body && body.message) || resp.statusText);
    err.body = body; err.status = resp.status;
    throw err;
  }
  return body;
}

function status(text) { $("status").textContent = text || ""; }

function renderList(items) {
  const nav = $("list");
  nav.textContent = "";
  for (const f of items) {
    const a = document.createElement("a");
    a.href = "#" + f.name;
    a.dataset.name = f.name;
    a.className = "fn-link";
    a.textContent = f.name + (f.branch ? "  [" + f.branch + "]" : "");
    const small = document.createElement("small");
    small.textContent = f.description || f.summary || "";
    a.appendChild(small);
    a.addEventListener("click", (ev) => { ev.preventDefault(); openFunction(f.name); });
    nav.appendChild(a);
  }
  if (!items.length) nav.textContent = "Nothing found.";
}

async function loadList() {
  const data = await api("/ui/api/functions");
  renderList(data.functions);
  status(data.functions.length + " functions");
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $("search").value.trim();
    try {
      if (!q) { await loadList(); return; }
      const data = await api("/search?q=" + encodeURIComponent(q) + "&limit=50");
      renderList(data.functions);
      status(data.count + " result(s) for " + JSON.stringify(q));
    } catch (e) { if (e.message !== "unauthorized") status(e.message); }
  }, 150);
}

// A line diff (longest common subsequence): enough for one function's versions.
function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const dp = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (dp[i + 1][j] >= dp[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

function showDiff(older, newer) {
  const pre = $("diff");
  pre.textContent = "";
  for (const [mark, line] of diffLines(older.code, newer.code)) {
    const span = document.createElement("span");
    span.className = mark === "+" ? "add" : mark === "-" ? "del" : "";
    span.textContent = mark + " " + line + "\n";
    pre.appendChild(span);
  }
  $("diff-box").hidden = false;
}

function when(ts) { return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19); }

function buildForm(schema) {
  const form = $("call-form");
  form.textContent = "";
  if (!schema) { form.textContent = "This signature cannot be described as a form."; return; }
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  for (const [name, prop] of Object.entries(props)) {
    const label = document.createElement("label");
    label.textContent = name + (required.has(name) ? " *" : "") + " (" + (prop.type || "JSON") + ")";
    const input = document.createElement("input");
    input.name = name;
    input.dataset.type = prop.type || "";
    if (prop.default !== undefined) input.placeholder = JSON.stringify(prop.default);
    label.appendChild(input);
    form.appendChild(label);
  }
  const button = document.createElement("button");
  button.textContent = "Call";
  form.appendChild(button);
}

async function runCall(ev) {
  ev.preventDefault();
  const body = {};
  for (const input of $("call-form").querySelectorAll("input")) {
    if (input.value === "") continue;
    if (input.dataset.type === "string") body[input.name] = input.value;
    else {
      try { body[input.name] = JSON.parse(input.value); } catch (e) { body[input.name] = input.value; }
    }
  }
  const out = $("call-result");
  out.textContent = "calling...";
  try {
    const data = await api("/call/" + encodeURIComponent(current.name), {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    out.textContent = "result: " + JSON.stringify(data.result, null, 2);
  } catch (e) {
    out.textContent = "error: " + (e.body ? (e.body.error + ": " + e.body.message) : e.message);
  }
}

async function openFunction(name) {
  try {
    const f = await api("/ui/api/functions/" + encodeURIComponent(name));
    current = f;
    $("detail").hidden = false;
    $("fn-name").textContent = f.name;
    $("fn-signature").textContent = f.signature;
    $("fn-doc").textContent = f.docstring || "";
    $("description").value = f.description || "";
    const live = f.versions.find((v) => !v.deleted) || f.versions[0];
    $("code").textContent = live ? live.code : "";
    const list = $("versions");
    list.textContent = "";
    f.versions.forEach((v, i) => {
      const li = document.createElement("li");
      li.textContent = when(v.saved_at) + "  " + v.sha256.slice(0, 12) + (v.deleted ? "  deleted" : "") +
        (v.description ? "  \u201c" + v.description + "\u201d" : "") + " ";
      if (i + 1 < f.versions.length) {
        const b = document.createElement("button");
        b.textContent = "diff with previous";
        b.className = "diff-button";
        b.addEventListener("click", () => showDiff(f.versions[i + 1], v));
        li.appendChild(b);
      }
      list.appendChild(li);
    });
    $("diff-box").hidden = true;
    $("call-result").textContent = "";
    buildForm(f.schema);
    for (const a of document.querySelectorAll(".fn-link")) a.classList.toggle("active", a.dataset.name === name);
  } catch (e) { if (e.message !== "unauthorized") status(e.message); }
}

async function saveDescription(ev) {
  ev.preventDefault();
  try {
    const data = await api("/ui/api/describe/" + encodeURIComponent(current.name), {
      method: "POST", body: JSON.stringify({ description: $("description").value }),
      headers: { "Content-Type": "application/json" },
    });
    status(data.added ? "description saved" : "description unchanged");
    await openFunction(current.name);
  } catch (e) { if (e.message !== "unauthorized") status(e.message); }
}

async function loadWorkers() {
  try {
    const data = await api("/ui/api/workers");
    $("workers").textContent = JSON.stringify(data, null, 2);
  } catch (e) { /* shown by the list */ }
}

async function start() {
  try { await loadList(); } catch (e) { if (e.message !== "unauthorized") status(e.message); return; }
  loadWorkers();
  if (location.hash.length > 1) openFunction(decodeURIComponent(location.hash.slice(1)));
}

$("search").addEventListener("input", onSearch);
$("call-form").addEventListener("submit", runCall);
$("describe-form").addEventListener("submit", saveDescription);
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("gf-token", $("token").value);
  $("token").value = "";
  status("");
  start();
});
setInterval(loadWorkers, 5000);
start();
