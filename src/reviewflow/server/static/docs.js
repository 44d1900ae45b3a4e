// The API reference at /docs: the vendored Swagger UI over this server's /openapi.json (a file,
// not an inline script, so the Content-Security-Policy holds; no validator badge: no request
// leaves the server). No deep links: they put a link inside each operation's button, which
// axe-core reports as nested interactive controls.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: false,
  validatorUrl: null,
});
