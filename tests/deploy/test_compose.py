"""deploy/docker-compose.yml (and its `scale` profile) checked with Debian's `docker-compose` 1.29 (`make
tools` installs it; no Docker engine runs here, so nothing is started): the Compose-spec validation of
`docker-compose config` against a filled copy of deploy/.env.example, a refusal without the secrets, a
health check on every service, no secret written as a literal, every mounted file present (and the
Prometheus and Alertmanager ones through promtool and amtool, as their own tests do), and only Grafana,
Airflow's API server and the clvdrift API published, on 127.0.0.1."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "docker-compose.yml"
SCALE = DEPLOY / "docker-compose.scale.yml"
EXAMPLE = DEPLOY / ".env.example"
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
           "AIRFLOW_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD")  # fmt: skip
PUBLISHED = {"clvdrift-api", "airflow-apiserver", "grafana"}


def _compose(
    *args: str | Path, env_file: Path, files: tuple[Path, ...] = (BASE,)
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not found on PATH: run `make tools` (Debian package docker-compose)"
    command = [exe, *(a for f in files for a in ("-f", str(f))), "--env-file", str(env_file), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=DEPLOY)


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/.env.example with every secret filled in (distinct values, none of them a default)."""
    text = EXAMPLE.read_text()
    for i, name in enumerate(SECRETS):
        assert re.search(rf"^{name}=$", text, re.M), f"{name} is not an empty entry of .env.example"
        text = re.sub(rf"^{name}=$", f"{name}=s3cret-{i}-for-the-test", text, flags=re.M)
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text(text)
    return path


@pytest.fixture(scope="module", params=["base", "scale"])
def rendered(request: pytest.FixtureRequest, env_file: Path) -> dict[str, Any]:
    files = (BASE,) if request.param == "base" else (BASE, SCALE)
    profile = () if request.param == "base" else ("--profile", "scale")
    proc = _compose(*profile, "config", env_file=env_file, files=files)
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = yaml.safe_load(proc.stdout)
    return config


def test_the_stack_has_the_services_of_the_seed(rendered: dict[str, Any]) -> None:
    services = set(rendered["services"])
    assert services >= {
        "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
        "clvdrift-api", "clvdrift-worker", "prometheus", "pushgateway", "alertmanager", "loki",
        "promtail", "grafana", "node-exporter", "cadvisor",
    }  # fmt: skip
    assert set(rendered["networks"]) == {"clvdrift"}
    # deploy/loki/loki-config.yml listens on 127.0.0.1: in the stack Loki must listen on its network
    assert "-server.http-listen-address=0.0.0.0" in rendered["services"]["loki"]["command"]
    assert all(
        s.get("networks") and set(s["networks"]) == {"clvdrift"} for s in rendered["services"].values()
    )


def test_every_service_has_a_health_check_and_waits_on_conditions(rendered: dict[str, Any]) -> None:
    for name, service in rendered["services"].items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        for dependency, how in (service.get("depends_on") or {}).items():
            assert how.get("condition") in ("service_healthy", "service_completed_successfully"), (
                name,
                dependency,
            )
    for name, volume in rendered.get("volumes", {}).items():
        assert not (volume or {}).get("external"), name  # named volumes of the stack's own


def _port(spec: Any) -> tuple[str, str]:
    """(host address, host port) of a rendered port: docker-compose 1.29 renders the short syntax
    ``127.0.0.1:8080:8080/tcp``."""
    host_ip, published, _target = str(spec).split(":")
    return host_ip, published


def test_only_grafana_airflow_and_the_api_are_published_on_loopback(rendered: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in rendered["services"].items() if s.get("ports")}
    assert set(published) == PUBLISHED
    for name, ports in published.items():
        for port in ports:
            assert _port(port)[0] == "127.0.0.1", (name, port)
    assert _port(rendered["services"]["grafana"]["ports"][0])[1] == "3000"
    assert _port(rendered["services"]["airflow-apiserver"]["ports"][0])[1] == "8080"
    assert _port(rendered["services"]["clvdrift-api"]["ports"][0])[1] == "8000"


def test_the_scale_profile_runs_celery_and_two_replicas(env_file: Path) -> None:
    proc = _compose("--profile", "scale", "config", env_file=env_file, files=(BASE, SCALE))
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert {"redis", "airflow-worker"} <= set(services)
    for name in ("airflow-scheduler", "airflow-apiserver", "airflow-dag-processor", "airflow-worker"):
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    assert services["airflow-init"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    for name in ("clvdrift-api", "clvdrift-worker", "airflow-worker"):
        assert int(services[name]["deploy"]["replicas"]) == 2, name
    base = yaml.safe_load(_compose("config", env_file=env_file).stdout)["services"]
    assert base["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not {"redis", "airflow-worker"} & set(base)


@pytest.mark.parametrize("missing", SECRETS)
def test_compose_refuses_to_start_without_each_secret(env_file: Path, tmp_path: Path, missing: str) -> None:
    broken = tmp_path / ".env"
    broken.write_text(re.sub(rf"^{missing}=.*$", f"{missing}=", env_file.read_text(), flags=re.M))
    proc = _compose("config", "-q", env_file=broken)
    assert proc.returncode != 0 and missing in proc.stderr, proc.stderr


def test_no_secret_is_written_as_a_literal() -> None:
    """Every value of a password, secret, key or credential-bearing URL in the compose files is an
    interpolation that refuses an empty value (``${NAME:?...}``)."""
    for path in (BASE, SCALE):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*([A-Z0-9_]+):\s*(.+)$", line)
            if not match:
                continue
            name, value = match.groups()
            if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", name) and not name.endswith("_FILE"):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value.strip()), (
                    f"{path.name}:{number}: {line}"
                )
            for credentials in re.findall(r"://[^/@\s]*:([^@/\s]+)@", value):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", credentials), f"{path.name}:{number}: {line}"


def test_every_mounted_file_exists_and_passes_its_checks(rendered: dict[str, Any], promtool, amtool) -> None:  # type: ignore[no-untyped-def]
    mounted = set()
    for name, service in rendered["services"].items():
        for volume in service.get("volumes") or []:
            source = Path(str(volume).split(":")[0])  # 1.29 renders "source:target:mode"
            if source.is_absolute() and source.is_relative_to(DEPLOY.parent):
                assert source.exists(), f"{name} mounts {source}, which does not exist"
                mounted.add(source.relative_to(DEPLOY.parent).as_posix())
    assert mounted >= {
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/rules.yml",
        "deploy/alertmanager/alertmanager.yml",
        "deploy/loki/loki-config.yml",
        "deploy/promtail/promtail-config.yml",
        "deploy/grafana/provisioning",
        "deploy/grafana/dashboards",
        "deploy/postgres/init-airflow.sh",
        "dags",
    }
    checked = promtool("check", "config", DEPLOY / "prometheus" / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout
    checked = amtool("check-config", DEPLOY / "alertmanager" / "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout
