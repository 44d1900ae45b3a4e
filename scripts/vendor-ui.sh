#!/usr/bin/env bash
# Vendor the dashboard's JavaScript libraries from the npm registry into the package
# (src/reviewflow/server/static/vendor/), so the dashboard needs no CDN at run time and no Node.js
# to install or run. Rerunnable: `scripts/vendor-ui.sh` fetches the pinned versions, checks each
# tarball against the registry's dist.integrity, copies the built files and writes manifest.json
# (name, version, integrity, and the sha256 of every file copied). `scripts/vendor-ui.sh --verify`
# only checks the vendored files against the manifest (no network; the tests do the same).
# Needs npm only to fetch (the maintainer's machine), never to install or run reviewflow.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=src/reviewflow/server/static/vendor
MANIFEST=$DEST/manifest.json

# name@version  file-in-package...  (cytoscape-dagre 4 bundles the dagre layout; uPlot draws the
# Metrics page's charts; axe-core is only loaded by the accessibility test, never by a page;
# swagger-ui-dist is the API reference at /docs)
PINS=(
  "cytoscape@3.35.0 dist/cytoscape.min.js"
  "cytoscape-dagre@4.0.1 dist/cytoscape-dagre.min.js"
  "uplot@1.6.32 dist/uPlot.iife.min.js dist/uPlot.min.css"
  "axe-core@4.14.1 axe.min.js"
  "swagger-ui-dist@5.35.0 swagger-ui-bundle.js swagger-ui.css"
)

if [[ "${1:-}" == "--verify" ]]; then
  exec python3 - "$MANIFEST" <<'PY'
import hashlib, json, pathlib, sys
manifest = pathlib.Path(sys.argv[1])
bad = 0
for entry in json.loads(manifest.read_text())["packages"]:
    for f in entry["files"]:
        path = manifest.parent / f["path"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"
        if digest != f["sha256"]:
            print(f"{path}: sha256 {digest} != manifest {f['sha256']}")
            bad += 1
print("vendored files match manifest.json" if not bad else f"{bad} file(s) differ")
sys.exit(1 if bad else 0)
PY
fi

command -v npm >/dev/null || { echo "vendor-ui.sh: npm is needed to fetch (not to run)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEST"
ENTRIES=()
for pin in "${PINS[@]}"; do
  read -r spec files <<<"$pin"
  name=${spec%@*}; version=${spec##*@}
  integrity=$(npm view "$spec" dist.integrity)
  tarball=$(cd "$WORK" && npm pack --silent "$spec" | tail -1)
  actual="sha512-$(openssl dgst -sha512 -binary "$WORK/$tarball" | base64 -w0)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "vendor-ui.sh: $spec: tarball integrity $actual != registry $integrity" >&2
    exit 1
  fi
  rm -rf "$WORK/package" && tar -xzf "$WORK/$tarball" -C "$WORK"
  cp "$WORK/package/LICENSE"* "$DEST/$name-$version.LICENSE" 2>/dev/null || true
  FILES=()
  for file in $files; do
    out="$name-$version.${file##*.}"
    cp "$WORK/package/$file" "$DEST/$out"
    sha=$(sha256sum "$DEST/$out" | cut -d' ' -f1)
    FILES+=("{\"from\": \"$file\", \"path\": \"$out\", \"sha256\": \"$sha\"}")
  done
  joined=$(IFS=,; echo "${FILES[*]}")
  ENTRIES+=("{\"name\": \"$name\", \"version\": \"$version\", \"integrity\": \"$integrity\", \"files\": [${joined//\}\,\{/\}, \{}]}")
  echo "$spec: $files ($integrity)"
done
{
  echo '{"packages": ['
  for i in "${!ENTRIES[@]}"; do
    sep=","; [[ $i -eq $((${#ENTRIES[@]} - 1)) ]] && sep=""
    echo "  ${ENTRIES[$i]}$sep"
  done
  echo ']}'
} > "$MANIFEST"
"$0" --verify
