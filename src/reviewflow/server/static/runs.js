// The runs page: filters in the address (shareable), pages by the API's cursor, and a refresh
// every few seconds that keeps the page in place (states, durations and counts stay live).
"use strict";
(() => {
  const REFRESH_MS = 2000;
  const STATES = ["pending", "running", "paused", "succeeded", "failed", "cancelled"];
  const form = document.getElementById("filters");
  const body = document.getElementById("runs-body");
  const counts = document.getElementById("counts");
  const status = document.getElementById("runs-status");
  const next = document.getElementById("next-page");
  const first = document.getElementById("first-page");
  let cursor = null; // the cursor of the page shown (null: the newest)
  let nextCursor = null;
  let timer = null;

  const fields = ["q", "workflow", "meta", "state"];
  const params = new URLSearchParams(location.search);
  for (const f of fields) document.getElementById(`f-${f}`).value = params.get(f) || "";
  cursor = params.get("cursor");

  function query() {
    const q = new URLSearchParams();
    for (const f of fields) {
      const v = document.getElementById(`f-${f}`).value.trim();
      if (v) q.set(f, v);
    }
    return q;
  }

  function showCounts(data) {
    counts.replaceChildren();
    const total = Object.values(data).reduce((a, b) => a + b, 0);
    const current = document.getElementById("f-state").value;
    const item = (state, n) => {
      const label = `${state || "all"}: ${n}`;
      const a = rf.el("a", { href: "#", text: label, dataset: { state: state || "any" } });
      if (state === current) a.setAttribute("aria-current", "true");
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        document.getElementById("f-state").value = state;
        go(null);
      });
      return rf.el("li", {}, a);
    };
    counts.append(item("", total));
    for (const s of STATES) if (data[s]) counts.append(item(s, data[s]));
  }

  function row(run) {
    const link = rf.el("a", { href: `/ui/runs/${encodeURIComponent(run.run_id)}`, text: run.run_id });
    const end = run.finished_at || Date.now() / 1000;
    const meta = Object.entries(run.meta || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    const stateCell = rf.el("td", {}, rf.badge(run.state));
    if (run.error) stateCell.append(rf.el("span", { class: "error", text: ` ${run.error}` }));
    return rf.el("tr", { dataset: { runId: run.run_id } },
      rf.el("td", {}, link), rf.el("td", { text: run.workflow }), stateCell,
      rf.el("td", { text: rf.time(run.created_at) }),
      rf.el("td", { text: rf.duration(end - run.created_at) }),
      rf.el("td", { class: "meta", text: meta }));
  }

  let seq = 0; // a slower, older answer never replaces a newer one
  async function load() {
    const mine = ++seq;
    const q = query();
    const meta = q.get("meta");
    q.delete("meta");
    if (meta) for (const m of meta.split(/\s+/)) q.append("meta", m);
    q.set("counts", "true");
    q.set("limit", "50");
    if (cursor) q.set("cursor", cursor);
    try {
      const doc = await rf.api(`/runs?${q}`);
      if (mine !== seq) return;
      body.replaceChildren(...doc.runs.map(row));
      showCounts(doc.counts || {});
      nextCursor = doc.next_cursor;
      next.disabled = !nextCursor;
      first.disabled = !cursor;
      status.textContent = doc.runs.length ? `${doc.runs.length} runs shown` : "No runs match.";
    } catch (err) {
      status.textContent = `Cannot list runs: ${err.message}`;
    }
    clearTimeout(timer);
    timer = setTimeout(load, REFRESH_MS);
  }

  function go(newCursor) {
    cursor = newCursor;
    const q = query();
    if (cursor) q.set("cursor", cursor);
    history.replaceState(null, "", `/?${q}`);
    load();
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); go(null); });
  document.getElementById("f-state").addEventListener("change", () => go(null));
  next.addEventListener("click", () => { if (nextCursor) go(nextCursor); });
  first.addEventListener("click", () => go(null));
  load();
})();
