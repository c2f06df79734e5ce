"""docker/: the compose files parsed and checked (no container runs here), images linted.

The worker compose file must hold Redis, MongoDB and N workers, each with a healthcheck;
the workers must find Redis and MongoDB by service name, expose the worker port range,
wait for healthy dependencies and carry a token. The Ray example must join its workers to
its head. Every Dockerfile must pass hadolint.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / name).read_text())
    assert isinstance(data, dict)
    return data


def test_the_worker_compose_file() -> None:
    compose = load("compose.yml")
    services = compose["services"]
    assert set(services) == {"redis", "mongo", "worker"}
    for name, service in services.items():
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD" and len(check) > 1, name
    worker = services["worker"]
    env = worker["environment"]
    assert env["GF_WORKER_REDIS_URL"].startswith("redis://redis:6379/")
    assert env["GF_STORAGE_URL"].startswith("mongodb://mongo:27017/")
    assert env["GF_TOKEN"].startswith("${GF_TOKEN:?")  # required, never a default
    assert env["GF_WORKER_PORTS"] == "26000-27000" and worker["expose"] == ["26000-27000"]
    assert worker["command"][:3] == ["worker", "--host", "0.0.0.0"]
    assert worker["init"] is True  # pid 1 forwards SIGTERM: the worker drains, not SIGKILLed
    assert worker["deploy"]["replicas"] >= 2
    assert {k: v["condition"] for k, v in worker["depends_on"].items()} == {
        "redis": "service_healthy",
        "mongo": "service_healthy",
    }
    assert worker["build"]["dockerfile"] == "docker/worker.Dockerfile"
    assert (DOCKER.parent / worker["build"]["dockerfile"]).is_file()
    assert worker["healthcheck"]["test"][1:] == ["python", "/opt/globalfunc/healthcheck.py"]
    for service in services.values():
        assert service["networks"] == ["gf"]
    assert "gf" in compose["networks"]


def test_the_ray_example() -> None:
    services = load("ray-compose.yml")["services"]
    assert set(services) == {"ray-head", "ray-worker"}
    head, worker = services["ray-head"], services["ray-worker"]
    assert "--head" in head["command"] and "--port=6379" in head["command"]
    assert "--address=ray-head:6379" in worker["command"]
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert all("healthcheck" in s for s in services.values())


def test_the_worker_image() -> None:
    text = (DOCKER / "worker.Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "\nUSER 10001\n" in text  # not root
    assert "EXPOSE 26000-27000" in text
    assert "HEALTHCHECK" in text and "healthcheck.py" in text
    assert 'CMD ["worker"]' in text


def test_the_healthcheck_script_reports_a_dead_port(unused_port: int) -> None:
    done = subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py")],
        env={"GF_WORKER_PORTS": f"{unused_port}-{unused_port}"},
        timeout=30,
    )
    assert done.returncode == 1


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("dockerfile", sorted(p.name for p in DOCKER.glob("*Dockerfile")))
def test_hadolint_is_clean(dockerfile: str) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run(
        [str(hadolint), str(DOCKER / dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
