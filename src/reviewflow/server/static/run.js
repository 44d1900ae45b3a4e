// The run page: the DAG (cytoscape + dagre) with live states from the run's event stream,
// an accessible task table carrying the same states as text, a task panel (attempts, why it
// waits, approval buttons, the log tail following while the task runs) and run control.
"use strict";
(() => {
  const main = document.getElementById("main");
  const runId = main.dataset.runId;
  const base = `/runs/${encodeURIComponent(runId)}`;
  const LOG_TAIL = 64 * 1024;
  const LOG_FOLLOW_MS = 1000;
  const TERMINAL = new Set(["succeeded", "failed", "cancelled", "skipped"]);
  const $ = (id) => document.getElementById(id);
  let styles = {};
  let cy = null;
  let run = null;
  const nodes = new Map(); // node id -> node doc (tasks and groups)
  const taskNode = new Map(); // task name -> node id (its own or its group's)
  const rows = new Map(); // node id -> table row
  let selected = null; // task name shown in the panel
  let logTimer = null;

  function label(n) {
    if (n.group) {
      const parts = Object.entries(n.states).filter(([, c]) => c).map(([s, c]) => `${c} ${s}`);
      return `${n.count} tasks (${n.sample[0]}, …)\n${parts.join(", ")}`;
    }
    return `${n.name}\n${n.state}`;
  }

  function groupState(n) {
    const order = ["failed", "timed_out", "running", "retry_wait", "ready", "blocked", "cancelled", "skipped", "succeeded"];
    return order.find((s) => n.states[s]) || "blocked";
  }

  function nodeState(n) { return n.group ? groupState(n) : n.state; }

  function showRun() {
    $("run-workflow").textContent = run.workflow;
    $("run-state").replaceWith(Object.assign(rf.badge(run.state, styles), { id: "run-state" }));
    const end = run.finished_at || Date.now() / 1000;
    $("run-duration").textContent = run.started_at ? rf.duration(end - run.started_at) : "not started";
    $("run-error").textContent = run.error || "";
    document.querySelectorAll(".controls button").forEach((b) => {
      const ended = ["succeeded", "failed", "cancelled"].includes(run.state);
      b.disabled = ended || (b.dataset.action === "pause" && run.state === "paused")
        || (b.dataset.action === "resume" && run.state !== "paused");
    });
  }

  function paintRow(n) {
    const tr = rows.get(n.id);
    if (!tr) return;
    tr.dataset.state = nodeState(n);
    const cell = tr.children[1];
    if (n.group) {
      cell.replaceChildren(...Object.entries(n.states).filter(([, c]) => c)
        .map(([s, c]) => { const b = rf.badge(s, styles); b.textContent = `${c} ${s}`; return b; }));
    } else if (cell.firstChild) {
      rf.restyle(cell.firstChild, n.state, styles); // in place: no new node per transition
    } else {
      cell.append(rf.badge(n.state, styles));
    }
  }

  // The table row changes at once; the graph's nodes at most every GRAPH_MS (a redraw of a
  // big graph per transition would hold the page's main thread, and every update behind it).
  // Only the colours change while the labels are too small to be drawn (a big graph seen
  // whole): a new label makes cytoscape measure its text again and recompute the node's box
  // and its edges, which was most of a redraw; the labels catch up when the graph is zoomed.
  // A redraw costs about a millisecond per node (canvas, no GPU) and holds the main thread:
  // a big graph is repainted less often (1,000 nodes: every second), the table at once.
  let graphMs = 250;
  const BIG = 500;
  const FONT_PX = 11;
  const MIN_FONT_PX = 7;
  const dirty = new Map();
  const staleLabels = new Map();
  let graphTimer = null;
  const labelsDrawn = () => cy.zoom() * FONT_PX >= MIN_FONT_PX;
  function paintGraph() {
    graphTimer = null;
    if (!cy) return;
    const withLabels = labelsDrawn();
    cy.batch(() => {
      for (const n of dirty.values()) {
        const s = styles[nodeState(n)] || {};
        const data = { fill: s.fill || "#fff", stroke: s.stroke || "#999", color: s.color || "#000" };
        if (withLabels) data.label = label(n); else staleLabels.set(n.id, n);
        cy.getElementById(n.id).data(data);
      }
    });
    dirty.clear();
  }
  function freshLabels() {
    if (!staleLabels.size || !labelsDrawn()) return;
    cy.batch(() => {
      for (const n of staleLabels.values()) cy.getElementById(n.id).data("label", label(n));
    });
    staleLabels.clear();
  }

  function paint(n) {
    paintRow(n);
    dirty.set(n.id, n);
    if (!graphTimer) graphTimer = setTimeout(paintGraph, graphMs);
  }

  function buildTable() {
    const body = $("tasks-body");
    const out = [];
    for (const n of nodes.values()) {
      const name = n.group ? `${n.count} tasks like ${n.sample.join(", ")}` : n.name;
      const button = rf.el("button", { type: "button", class: "link", text: name });
      button.addEventListener("click", () => select(n));
      const tr = rf.el("tr", { dataset: { node: n.id, task: n.group ? "" : n.name } },
        rf.el("td", {}, button), rf.el("td"), rf.el("td", { text: n.group ? "group" : n.type }));
      rows.set(n.id, tr);
      out.push(tr);
    }
    body.replaceChildren(...out);
    for (const n of nodes.values()) paintRow(n);
  }

  function buildGraph(doc) {
    const elements = [];
    for (const n of nodes.values()) {
      const s = styles[nodeState(n)] || {};
      elements.push({ data: { id: n.id, label: label(n), fill: s.fill, stroke: s.stroke, color: s.color,
        shape: n.group ? "barrel" : (n.on_failure ? "round-rectangle" : "rectangle") } });
    }
    doc.edges.forEach(([a, b], i) => elements.push({ data: { id: `e${i}`, source: a, target: b } }));
    const big = nodes.size > BIG;
    cy = cytoscape({
      container: $("graph"),
      pixelRatio: big ? 1 : "auto",
      elements,
      wheelSensitivity: 0.3,
      style: [
        { selector: "node", style: {
          label: "data(label)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
          "font-size": FONT_PX, "background-color": "data(fill)", "border-color": "data(stroke)",
          "border-width": 2, color: "data(color)", shape: "data(shape)", width: 150, height: 44,
          // labels too small to read are not drawn (text is most of a big graph's redraw)
          "min-zoomed-font-size": MIN_FONT_PX } },
        { selector: "node:selected", style: { "border-width": 4 } },
        // Straight edges on a big graph (bezier control points cost more than the rest of
        // it); past BIG nodes, seen whole at a zoom where arrowheads are a pixel, haystack
        // lines without arrows (cytoscape's cheapest edges; the layout ranks top to bottom).
        { selector: "edge", style: big
          ? { width: 1, "line-color": "#8c959f", "curve-style": "haystack", "haystack-radius": 0 }
          : { width: 1.5, "line-color": "#8c959f", "target-arrow-color": "#8c959f",
            "target-arrow-shape": "triangle", "curve-style": doc.edges.length > 200 ? "straight" : "bezier" } },
      ],
      layout: { name: "dagre", rankDir: "TB", nodeSep: 20, rankSep: 40, animate: false },
      maxZoom: 2,
    });
    if (cy.zoom() > 1) { cy.zoom(1); cy.center(); }
    cy.on("tap", "node", (ev) => select(nodes.get(ev.target.id())));
    cy.on("zoom", freshLabels);
    graphMs = Math.min(2000, Math.max(250, nodes.size));
    window.rfGraph = cy;
  }

  function legend() {
    const p = $("legend");
    p.replaceChildren("States: ", ...Object.keys(styles).map((s) => rf.badge(s, styles)));
  }

  function apply(ev) {
    if (!ev.task) {
      run.state = ev.to;
      if (ev.to === "running" && !run.started_at) run.started_at = ev.at;
      if (["succeeded", "failed", "cancelled"].includes(ev.to)) run.finished_at = ev.at;
      showRun();
      return;
    }
    const id = taskNode.get(ev.task);
    const n = id && nodes.get(id);
    if (!n) return;
    if (n.group) {
      if (ev.from && n.states[ev.from]) n.states[ev.from] -= 1;
      n.states[ev.to] = (n.states[ev.to] || 0) + 1;
    } else {
      n.state = ev.to;
    }
    paint(n);
    if (ev.to === "running" || ev.from === "running") refreshSoon();
    if (selected === ev.task) showTask(ev.task);
  }

  function follow(after) {
    const source = new EventSource(`${base}/events/stream?after=${after}`);
    // Transitions arriving together (100 a second on a busy run) are applied in one frame,
    // with one graph redraw.
    let queue = [];
    const flush = () => {
      const batch = queue;
      queue = [];
      batch.forEach(apply);
    };
    source.addEventListener("transition", (m) => {
      queue.push(JSON.parse(m.data));
      if (queue.length === 1) {
        if (document.hidden) setTimeout(flush, 50); else requestAnimationFrame(flush);
      }
    });
    source.addEventListener("end", (m) => {
      flush();
      const d = JSON.parse(m.data);
      if (d.state) { run.state = d.state; showRun(); }
      refreshSoon();
      source.close();
      main.dataset.stream = "ended";
    });
    source.addEventListener("open", () => { main.dataset.stream = "open"; });
  }

  function attemptsTable(attempts) {
    if (!attempts.length) return rf.el("p", { text: "Not started yet." });
    const head = ["#", "Start", "End", "Duration", "Outcome", "Exit code", "CPU", "Peak RSS", "Error"];
    const tbody = rf.el("tbody");
    for (const a of attempts) {
      const cells = [a.attempt, rf.time(a.started_at), rf.time(a.ended_at), rf.duration(a.duration_s),
        a.outcome, a.exit_code ?? "", a.cpu_s != null ? `${a.cpu_s} s` : "",
        a.max_rss_kib != null ? `${Math.round(a.max_rss_kib / 1024)} MiB` : "", a.error || a.detail || ""];
      tbody.append(rf.el("tr", {}, ...cells.map((c) => rf.el("td", { text: c }))));
    }
    return rf.el("table", { class: "attempts" },
      rf.el("thead", {}, rf.el("tr", {}, ...head.map((h) => rf.el("th", { scope: "col", text: h })))), tbody);
  }

  async function showLog(name, running) {
    clearTimeout(logTimer);
    const pre = $("task-log");
    try {
      const text = await rf.api(`${base}/tasks/${encodeURIComponent(name)}/log?tail=${LOG_TAIL}`,
        { headers: { Accept: "text/plain" } });
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (err) {
      pre.textContent = err.status === 404 ? "(no log: python tasks write none, or not started)" : err.message;
    }
    if (running && selected === name) logTimer = setTimeout(() => showLog(name, true), LOG_FOLLOW_MS);
  }

  async function showTask(name) {
    let t;
    try {
      t = await rf.api(`/ui/api/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(name)}`);
    } catch (err) {
      $("task-body").replaceChildren(rf.el("p", { class: "error", text: err.message }));
      return;
    }
    if (selected !== name) return;
    const parts = [
      rf.el("p", {}, "State ", rf.badge(t.state, styles), ` · type ${t.type}`,
        t.needs.length ? ` · needs ${t.needs.join(", ")}` : "",
        t.needs_total > t.needs.length ? ` and ${t.needs_total - t.needs.length} more` : ""),
    ];
    if (t.wait_reason && !TERMINAL.has(t.state)) parts.push(rf.el("p", { class: "waiting", text: `Waiting: ${t.wait_reason}` }));
    if (t.error) parts.push(rf.el("p", { class: "error", text: t.error }));
    parts.push(attemptsTable(t.attempts));
    if (t.result !== null && t.result !== undefined) {
      parts.push(rf.el("details", {}, rf.el("summary", { text: "Result" }),
        rf.el("pre", { class: "result", text: JSON.stringify(t.result, null, 2) })));
    }
    if (t.approval && t.approval.decision) {
      parts.push(rf.el("p", { text: `${t.approval.decision} by ${t.approval.approver}${t.approval.comment ? `: ${t.approval.comment}` : ""}` }));
    }
    $("task-body").replaceChildren(...parts);
    const form = $("approval");
    if (form) form.hidden = !(t.approval && t.approval.waiting);
    showLog(name, !TERMINAL.has(t.state));
  }

  function select(n) {
    if (cy) { cy.$(":selected").unselect(); cy.getElementById(n.id).select(); }
    if (n.group) {
      selected = null;
      clearTimeout(logTimer);
      $("task-title").textContent = `${n.count} tasks`;
      const list = rf.el("ul", { class: "members" });
      for (const [name, gid] of Object.entries(membersOf)) {
        if (gid !== n.id) continue;
        const b = rf.el("button", { type: "button", class: "link", text: name });
        b.addEventListener("click", () => select({ id: gid, name }));
        list.append(rf.el("li", {}, b));
        if (list.children.length >= 200) break;
      }
      $("task-body").replaceChildren(rf.el("p", { text: Object.entries(n.states)
        .filter(([, c]) => c).map(([s, c]) => `${c} ${s}`).join(", ") }), list);
      $("task-log").textContent = "";
      if ($("approval")) $("approval").hidden = true;
      return;
    }
    selected = n.name;
    $("task-title").textContent = n.name;
    $("task-log").textContent = "";
    showTask(n.name);
  }

  async function control(action) {
    try {
      const doc = await rf.api(`${base}/${action}`, { method: "POST" });
      $("run-message").textContent = `${action}: accepted (run ${doc.state})`;
    } catch (err) {
      $("run-message").textContent = `${action} refused: ${err.message}`;
    }
  }

  async function decide(decision) {
    const comment = $("approval-comment").value.trim();
    if (decision === "reject" && !comment) {
      $("run-message").textContent = "A rejection needs a comment saying why.";
      $("approval-comment").focus();
      return;
    }
    try {
      await rf.api(`${base}/tasks/${encodeURIComponent(selected)}/${decision}`,
        { method: "POST", json: comment ? { comment } : {} });
      $("run-message").textContent = `${selected}: ${decision === "approve" ? "approved" : "rejected"}`;
      $("approval").hidden = true;
      $("approval-comment").value = "";
    } catch (err) {
      $("run-message").textContent = `${decision} refused: ${err.message}`;
    }
  }

  // The review of a review run: verdict (text and colour), reasons, findings, report links.
  async function loadReview() {
    const doc = await rf.api(`/ui/api/runs/${encodeURIComponent(runId)}/review`);
    const section = $("review");
    if (!doc.review) { section.hidden = true; notReview = true; return; }
    section.hidden = false;
    if (!doc.written) {
      $("review-verdict").textContent = "No report yet: the review writes report.json when its summary task ends.";
      return;
    }
    $("review-verdict").replaceChildren("Verdict ",
      rf.el("span", { class: `verdict verdict-${doc.verdict}`, text: doc.verdict.replace("_", " ") }),
      doc.template ? ` · template ${doc.template}` : "",
      ` · ${Object.entries(doc.counts).filter(([, n]) => typeof n === "number").map(([k, n]) => `${n} ${k}`).join(", ")}`);
    $("review-reasons").replaceChildren(...doc.reasons.map((r) => rf.el("li", { text: r })));
    const reportUrl = (name) => `/ui/runs/${encodeURIComponent(runId)}/reports/${name}`;
    $("review-files").replaceChildren("Reports: ",
      ...doc.files.map((name) => rf.el("a", { href: reportUrl(name), text: name })));
    $("findings-body").replaceChildren(...doc.findings.map((f) => rf.el("tr", { dataset: { severity: f.severity } },
      rf.el("td", { class: `sev-${f.severity}`, text: f.severity }), rf.el("td", { text: f.check }),
      rf.el("td", { text: f.file || "" }), rf.el("td", { text: f.line ?? "" }),
      rf.el("td", { text: f.rule }), rf.el("td", { text: f.message }))));
    $("findings-note").textContent = doc.findings_total === 0 ? "No findings."
      : doc.findings_total > doc.findings.length
        ? `The first ${doc.findings.length} of ${doc.findings_total} findings; all are in report.json.`
        : `${doc.findings_total} findings.`;
  }

  // The timeline (Gantt) of attempts: one row per attempt in start order, outcome as text too.
  async function loadTimeline() {
    const doc = await rf.api(`/ui/api/runs/${encodeURIComponent(runId)}/timeline`);
    const list = $("timeline");
    if (!doc.bars.length) {
      list.replaceChildren();
      $("timeline-note").textContent = "No attempt has started yet.";
      return;
    }
    const t0 = Math.min(...doc.bars.map((b) => b[2]));
    const t1 = Math.max(...doc.bars.map((b) => b[3] ?? doc.now), t0 + 0.001);
    const span = t1 - t0;
    $("timeline-note").textContent = (doc.total > doc.bars.length
      ? `${doc.bars.length} of ${doc.total} attempts: the slowest and the most recently started. `
      : `${doc.total} attempts. `) + `From ${rf.time(t0)}, over ${rf.duration(span)}.`;
    const rowsOut = doc.bars.map(([task, attempt, start, end, outcome]) => {
      const dur = (end ?? doc.now) - start;
      const name = rf.el("button", { type: "button", class: "link gantt-name", text: `${task} #${attempt ?? 1}` });
      name.addEventListener("click", () => {
        const id = taskNode.get(task);
        const n = id && nodes.get(id);
        select(n && !n.group ? n : { id: id || "", name: task });
      });
      const bar = rf.el("span", { class: `gantt-bar state-${outcome}`, title: `${task} #${attempt ?? 1}: ${outcome}, ${rf.duration(dur)}` });
      bar.style.left = `${((start - t0) / span) * 100}%`;
      bar.style.width = `${Math.max((dur / span) * 100, 0.2)}%`;
      return rf.el("li", { dataset: { task, outcome } }, name, rf.el("span", { class: "gantt-track" }, bar),
        rf.el("span", { class: "gantt-info", text: `${outcome} · ${rf.duration(dur)}` }));
    });
    list.replaceChildren(...rowsOut);
  }

  let notReview = false; // whether a run is a review never changes: no refresh then
  let refreshTimer = null; // timeline and review follow the events, at most every 2 s
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      loadTimeline().catch(() => {});
      if (!notReview) loadReview().catch(() => {});
    }, 2000);
  }

  let membersOf = {};
  async function start() {
    // the timeline and the review load beside the graph (they need none of it)
    loadTimeline().catch((err) => { $("timeline-note").textContent = `Cannot load the timeline: ${err.message}`; });
    loadReview().catch((err) => { $("run-message").textContent = `Cannot load the review: ${err.message}`; });
    const doc = await rf.api(`/ui/api/runs/${encodeURIComponent(runId)}/graph`);
    styles = doc.styles;
    run = doc.run;
    membersOf = doc.members;
    for (const n of doc.nodes) {
      nodes.set(n.id, n);
      if (!n.group) taskNode.set(n.name, n.id);
    }
    for (const [name, gid] of Object.entries(doc.members)) taskNode.set(name, gid);
    legend();
    showRun();
    buildTable();
    buildGraph(doc);
    main.dataset.ready = "true";
    if (!["succeeded", "failed", "cancelled"].includes(run.state)) follow(doc.last_event_id);
  }

  document.querySelectorAll(".controls button").forEach((b) =>
    b.addEventListener("click", () => control(b.dataset.action)));
  if ($("approve")) {
    $("approve").addEventListener("click", () => decide("approve"));
    $("reject").addEventListener("click", () => decide("reject"));
  }
  start().catch((err) => { $("run-message").textContent = `Cannot load the run: ${err.message}`; });
})();
