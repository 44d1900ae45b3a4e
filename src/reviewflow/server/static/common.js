// Shared helpers of the dashboard pages. Every value from the server is put in the page with
// textContent (never as markup): a task named <img src=x onerror=...> is shown as text.
"use strict";
const rf = (() => {
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const csrf = meta("rf-csrf");
  const readOnly = meta("rf-read-only") !== "false";

  async function api(path, options = {}) {
    const opts = { credentials: "same-origin", ...options };
    opts.headers = { Accept: "application/json", ...(options.headers || {}) };
    if (opts.method && opts.method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    const resp = await fetch(path, opts);
    if (resp.status === 401 && path !== "/ui/login") {
      location.reload(); // the session ended (server restart): the login page shows
      throw new Error("logged out");
    }
    const type = resp.headers.get("content-type") || "";
    const body = type.includes("json") ? await resp.json() : await resp.text();
    if (!resp.ok) {
      const message = (body && body.error) || (body && body.detail) || resp.statusText;
      const err = new Error(`${resp.status}: ${message}`);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function time(at) {
    return at ? new Date(at * 1000).toLocaleString() : "";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 120) return `${seconds.toFixed(1)} s`;
    if (seconds < 7200) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  // A state as text plus colour (never colour alone); styles come from the server (diagram.py).
  function badge(state, styles) {
    return restyle(el("span"), state, styles);
  }

  // A badge shown with another state (a live row changes its badge rather than replacing it).
  function restyle(span, state, styles) {
    span.className = `badge state-${state}`;
    span.textContent = state;
    span.dataset.state = state;
    const s = styles && styles[state];
    span.style.background = s ? s.fill : "";
    span.style.borderColor = s ? s.stroke : "";
    span.style.color = s ? s.color : "";
    return span;
  }

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await api("/ui/logout", { method: "POST" });
      location.href = "/";
    });
  }
  return { api, el, time, duration, badge, restyle, csrf, readOnly };
})();
