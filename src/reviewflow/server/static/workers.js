// The Workers page: the workers of a PostgreSQL database, refreshed every 2 s; on SQLite an
// explanation of why there are none.
"use strict";
(() => {
  const REFRESH_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const STATE_CLASS = { running: "state-running", draining: "state-paused", lost: "state-failed" };

  function age(seconds) {
    return seconds < 1 ? "just now" : `${rf.duration(seconds)} ago`;
  }

  function row(w, now) {
    const state = rf.el("span", { class: `badge ${STATE_CLASS[w.state] || ""}`, text: w.state, dataset: { state: w.state } });
    const tasks = rf.el("ul", { class: "worker-tasks" }, ...w.tasks.map(([runId, task, started]) =>
      rf.el("li", {}, rf.el("a", { href: `/ui/runs/${encodeURIComponent(runId)}`, text: `${runId} / ${task}` }),
        started ? ` · ${rf.duration(now - started)}` : "")));
    if (w.running > w.tasks.length) tasks.append(rf.el("li", { text: `and ${w.running - w.tasks.length} more` }));
    return rf.el("tr", { dataset: { worker: w.name } },
      rf.el("th", { scope: "row", text: w.name }), rf.el("td", { text: w.host }), rf.el("td", { text: w.pid }),
      rf.el("td", {}, state), rf.el("td", { text: age(w.heartbeat_age) }), rf.el("td", { text: rf.time(w.started_at) }),
      rf.el("td", { text: `${w.running} / ${w.concurrency}` }), rf.el("td", {}, tasks));
  }

  async function load() {
    try {
      const doc = await rf.api("/ui/api/workers");
      $("workers-empty").hidden = doc.supported;
      $("workers-table").hidden = !doc.supported;
      if (!doc.supported) {
        $("workers-db").textContent = doc.database === "memory" ? "in-memory" : "SQLite";
        $("workers-status").textContent = "No workers: this database is not PostgreSQL.";
        return; // nothing changes without a restart on another database
      }
      $("workers-body").replaceChildren(...doc.workers.map((w) => row(w, doc.now)));
      const live = doc.workers.filter((w) => w.state !== "lost").length;
      $("workers-status").textContent = doc.workers.length
        ? `${live} live worker${live === 1 ? "" : "s"}, ${doc.workers.length - live} lost.`
        : "No worker has been heard from in the last hour: start one with reviewflow worker --db ….";
    } catch (err) {
      $("workers-status").textContent = `Cannot list workers: ${err.message}`;
    }
    setTimeout(load, REFRESH_MS);
  }
  load();
})();
