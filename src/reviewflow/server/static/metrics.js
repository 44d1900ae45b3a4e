// The Metrics page: charts (uPlot, vendored) of what the database computes per time bucket
// (GET /ui/api/metrics). Series differ by dash pattern and are named in the legend, never by
// colour alone; each chart has a one-line text summary.
"use strict";
(() => {
  const REFRESH_MS = 10000;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const charts = {};
  const STYLES = [
    { stroke: "#1a7f37", dash: [] }, { stroke: "#cf222e", dash: [6, 4] }, { stroke: "#0969da", dash: [2, 3] },
    { stroke: "#8250df", dash: [10, 3, 2, 3] }, { stroke: "#bc4c00", dash: [1, 1] }, { stroke: "#57606a", dash: [8, 8] },
  ];
  $("m-range").value = params.get("range") || "1h";

  function width(box) { return Math.max(280, box.parentElement.clientWidth - 20); }
  const seconds = (u, splits) => splits.map((v) => (v === null ? "" : rf.duration(v) || "0"));

  function draw(id, doc, series, unit, summary) {
    const data = [doc.buckets, ...series.map((s) => s.values)];
    const box = $(id);
    const opts = {
      width: width(box), height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: unit, size: 70, ...(unit === "seconds" ? { values: seconds } : {}) }],
      series: [{ label: "time" }, ...series.map((s, i) => ({
        label: s.label, stroke: STYLES[i % STYLES.length].stroke, dash: STYLES[i % STYLES.length].dash,
        width: 2, spanGaps: false, points: { show: true, size: 4 },
      }))],
    };
    if (charts[id]) charts[id].destroy();
    box.replaceChildren();
    charts[id] = new uPlot(opts, data, box);
    $(`${id}-sum`).textContent = summary;
  }

  const sum = (xs) => xs.reduce((a, b) => a + (b || 0), 0);
  const max = (xs) => xs.reduce((a, b) => (b !== null && b > a ? b : a), 0);
  const fmt = (s) => rf.duration(s) || "0 ms";

  function render(doc) {
    const select = $("m-workflow");
    const chosen = doc.workflow || "";
    select.replaceChildren(rf.el("option", { value: "", text: "all workflows" }),
      ...doc.workflows.map((w) => rf.el("option", { value: w, text: w })));
    if (chosen && !doc.workflows.includes(chosen)) select.append(rf.el("option", { value: chosen, text: chosen }));
    select.value = chosen;
    draw("c-throughput", doc, [
      { label: "tasks succeeded", values: doc.succeeded }, { label: "tasks failed", values: doc.failed },
      { label: "runs finished", values: doc.runs_finished }], "count",
      `${sum(doc.finished)} tasks finished (${sum(doc.failed)} failed), ${sum(doc.runs_finished)} runs finished.`);
    draw("c-duration", doc, [
      { label: "p50", values: doc.duration_p50 }, { label: "p95", values: doc.duration_p95 },
      { label: "max", values: doc.duration_max }], "seconds",
      `Highest p95 ${fmt(max(doc.duration_p95))}; longest task ${fmt(max(doc.duration_max))}.`);
    draw("c-wait", doc, [{ label: "p50", values: doc.wait_p50 }, { label: "p95", values: doc.wait_p95 }], "seconds",
      `Highest queue-wait p95 ${fmt(max(doc.wait_p95))}.`);
    const total = sum(doc.finished);
    const pct = (xs) => (total ? ((100 * sum(xs)) / total).toFixed(1) : "0");
    const retried = doc.retry_rate.map((r, i) => (r === null ? 0 : Math.round((r * doc.finished[i]) / 100)));
    draw("c-rates", doc, [
      { label: "succeeded %", values: doc.success_rate }, { label: "failed %", values: doc.failure_rate },
      { label: "retried %", values: doc.retry_rate }], "percent",
      `Over the range: ${pct(doc.succeeded)}% succeeded, ${pct(doc.failed)}% failed, ${pct(retried)}% needed a retry.`);
    const wfs = Object.entries(doc.per_workflow);
    draw("c-workflows", doc, wfs.map(([w, values]) => ({ label: w, values })), "tasks",
      wfs.length ? wfs.map(([w, v]) => `${w}: ${sum(v)}`).join(", ") : "No task finished in this range.");
    const capped = doc.capped ? ` (the newest ${doc.runs_scanned} runs only)` : "";
    $("metrics-status").textContent = `${doc.buckets.length} buckets of ${rf.duration(doc.width)}, `
      + `from ${rf.time(doc.since)}; ${doc.runs_scanned} runs${capped}.`;
    document.getElementById("main").dataset.ready = "true";
  }

  let timer = null;
  async function load() {
    clearTimeout(timer);
    const q = new URLSearchParams({ range: $("m-range").value });
    const wf = $("m-workflow").value || params.get("workflow");
    if (wf) q.set("workflow", wf);
    params.delete("workflow");
    try {
      const doc = await rf.api(`/ui/api/metrics?${q}`);
      if (!doc.supported) {
        $("metrics-status").textContent = "Metrics need a SQLite or PostgreSQL database.";
        return;
      }
      render(doc);
    } catch (err) {
      $("metrics-status").textContent = `Cannot load metrics: ${err.message}`;
    }
    timer = setTimeout(load, REFRESH_MS);
  }

  function go() {
    const q = new URLSearchParams({ range: $("m-range").value });
    if ($("m-workflow").value) q.set("workflow", $("m-workflow").value);
    history.replaceState(null, "", `/ui/metrics?${q}`);
    load();
  }
  $("m-range").addEventListener("change", go);
  $("m-workflow").addEventListener("change", go);
  $("metrics-form").addEventListener("submit", (ev) => { ev.preventDefault(); go(); });
  load();
})();
