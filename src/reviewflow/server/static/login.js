// Exchange a token for the session cookie. The token comes from the URL fragment (never sent
// to the server in a URL, so never in its logs), which is removed from the address bar at once.
"use strict";
(() => {
  const status = document.getElementById("login-status");
  async function login(token) {
    try {
      await rf.api("/ui/login", { method: "POST", json: { token } });
      location.reload();
    } catch (err) {
      status.textContent = err.status === 401
        ? "This token is not known (a one-time token works once: run `reviewflow ui` again)."
        : `Login failed: ${err.message}`;
    }
  }
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname + location.search);
    login(decodeURIComponent(match[1]));
  }
  document.getElementById("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login(document.getElementById("login-token").value.trim());
  });
})();
