"""deploy/docker-compose.yml and deploy/Dockerfile, checked without a Docker engine (none runs here).

The compose file is interpolated the way `docker compose` does it (`${VAR:-default}`, `${VAR:?error}`)
with the values of deploy/env.example, validated against the Compose Specification's JSON schema
(the copy check-jsonschema ships), and then held to what this project needs: the ports the scale
uses, mounts that exist in the repository, Grafana provisioning where Grafana reads it, and
InfluxDB settings that the interceptor's own config loader accepts and that agree across services.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from interceptor.config import load_config
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
GRAFANA = ROOT / "grafana"

SERVE_COMMAND = ["serve", "--config", "/etc/interceptor/interceptor.toml", "--data-dir", "/var/lib/interceptor"]
SCALE_PORTS = {(80, "tcp"), (53, "udp"), (53, "tcp")}


# --------------------------------------------------------------------------------------------------
# Compose interpolation, as the Compose Specification describes it


class MissingVariable(Exception):
    pass


_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<argument>.*))?", re.DOTALL)


def interpolate_text(text: str, environ: dict[str, str], used: set[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            used.add(match.group("named"))
            return environ.get(match.group("named"), "")
        braced = _BRACED.fullmatch(match.group("braced"))
        assert braced, f"not a valid interpolation: {match.group(0)}"
        name, operator, argument = braced.group("name", "operator", "argument")
        used.add(name)
        value = environ.get(name)
        unset_or_empty = not value
        if operator is None:
            return value or ""
        if operator == ":-":
            return argument if unset_or_empty else value  # type: ignore[return-value]
        if operator == "-":
            return argument if value is None else value
        if operator in (":?", "?"):
            if unset_or_empty if operator == ":?" else value is None:
                raise MissingVariable(f"{name}: {argument}")
            return value  # type: ignore[return-value]
        return "" if unset_or_empty else argument  # ":+"

    return _REFERENCE.sub(substitute, text)


def interpolate(node: Any, environ: dict[str, str], used: set[str]) -> Any:
    if isinstance(node, str):
        return interpolate_text(node, environ, used)
    if isinstance(node, list):
        return [interpolate(item, environ, used) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, environ, used) for key, value in node.items()}
    return node


def test_interpolation_follows_the_compose_rules() -> None:
    used: set[str] = set()
    environ = {"SET": "v", "EMPTY": ""}
    assert interpolate_text("$SET ${SET} $$SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", environ, used) == "v v $SET d d "
    assert interpolate_text("${SET:+alt}${UNSET:+alt}", environ, used) == "alt"
    with pytest.raises(MissingVariable, match="EMPTY: say so"):
        interpolate_text("${EMPTY:?say so}", environ, used)
    assert interpolate_text("${EMPTY?only unset}", environ, used) == ""
    assert used == {"SET", "UNSET", "EMPTY"}


def env_example() -> dict[str, str]:
    """deploy/env.example as a user fills it in: every empty value gets a secret."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip() or f"secret-{key.strip().lower()}"
    return values


def raw_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(raw_compose(), env_example(), set())


def service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


# --------------------------------------------------------------------------------------------------
# What `docker compose config` would say


def test_every_variable_is_documented_or_defaulted() -> None:
    used: set[str] = set()
    interpolate(raw_compose(), env_example(), used)  # raises MissingVariable for an undocumented one
    documented = set(env_example()) | {
        line.lstrip("# ").split("=", 1)[0] for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if re.match(r"#\s*[A-Z_]+=", line)
    }
    assert used <= documented, f"not in deploy/env.example: {used - documented}"


def test_secrets_are_required_not_defaulted() -> None:
    """Without a filled-in .env, compose must refuse to start rather than invent a token or password."""
    secrets = ("INFLUX_TOKEN", "INFLUX_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
    with pytest.raises(MissingVariable, match="|".join(secrets)):
        interpolate(raw_compose(), {}, set())
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in secrets:
        uses = re.findall(rf"\$\{{{secret}(\W[^}}]*)?\}}", text)
        assert uses and all(use.startswith(":?") for use in uses), f"{secret}: {uses}"


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, error.path))}: {error.message}" for error in errors)


def test_the_schema_check_can_fail(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    validator = jsonschema.Draft202012Validator(json.loads(schema_file.read_text(encoding="utf-8")))
    broken = json.loads(json.dumps(compose))
    broken["services"]["interceptor"]["netwrok_mode"] = "host"
    assert list(validator.iter_errors(broken))


# --------------------------------------------------------------------------------------------------
# What this project needs from it


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"interceptor", "influxdb", "grafana"}
    for name, service in compose["services"].items():
        assert service.get("restart") in {"unless-stopped", "always"}, name


def test_services_wait_for_healthy_dependencies_and_the_server_has_a_healthcheck(compose: dict[str, Any],
                                                                                    tmp_path: Path) -> None:
    services = compose["services"]
    for name, service in services.items():
        needs = service.get("depends_on", {})
        assert isinstance(needs, dict), f"{name}: depends_on without a condition starts it before {needs} is ready"
        for needed, how in needs.items():
            assert how == {"condition": "service_healthy"} and "healthcheck" in services[needed], (name, needed)
    test = services["interceptor"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "interceptor"]
    # The real command with the healthcheck's arguments: no server ran with this data dir, so unhealthy
    # (exit 1), with one line per check it asked for; never a usage error (exit 2).
    result = run_cli(*test[2:], "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0].split()[-1] for line in lines] == ["server", "http"]
    assert lines[0].startswith("FAIL  server: `interceptor serve` has never run with data dir")


def test_interceptor_is_built_from_the_repository(compose: dict[str, Any]) -> None:
    build = compose["services"]["interceptor"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


def parse_port(spec: str | int | dict[str, Any]) -> tuple[int, int, str]:
    """(published, target, protocol) of a short or long port mapping."""
    if isinstance(spec, dict):
        return int(spec["published"]), int(spec["target"]), spec.get("protocol", "tcp")
    text, _, protocol = str(spec).partition("/")
    parts = text.rsplit(":", 2)
    if len(parts) == 1:
        return int(parts[0]), int(parts[0]), protocol or "tcp"
    return int(parts[-2]), int(parts[-1]), protocol or "tcp"


def scale_ports_reachable(service: dict[str, Any]) -> set[tuple[int, str]]:
    """The (port, protocol) pairs of SCALE_PORTS that reach the service on the host's addresses."""
    if service.get("network_mode") == "host":
        return set(SCALE_PORTS)
    reachable = set()
    for spec in service.get("ports", []):
        published, target, protocol = parse_port(spec)
        if published == target and (target, protocol) in SCALE_PORTS and not str(spec).startswith("127."):
            reachable.add((target, protocol))
    return reachable


def test_port_rule_sees_missing_ports() -> None:
    assert scale_ports_reachable({"network_mode": "host"}) == SCALE_PORTS
    assert scale_ports_reachable({"ports": ["80:80", "53:53/udp", "53:53/tcp"]}) == SCALE_PORTS
    assert scale_ports_reachable({"ports": ["80:80", "53:53"]}) == {(80, "tcp"), (53, "tcp")}
    assert scale_ports_reachable({"ports": ["127.0.0.1:80:80"]}) == set()
    assert parse_port({"published": "8080", "target": 80}) == (8080, 80, "tcp")


def test_the_scale_reaches_ports_80_and_53(compose: dict[str, Any]) -> None:
    assert scale_ports_reachable(compose["services"]["interceptor"]) == SCALE_PORTS


def test_the_documented_bridge_alternative_publishes_the_same_ports() -> None:
    """The commented `ports:` block for hosts without host networking must be complete too."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    block = re.search(r"#\s+ports:\n((?:\s*#\s+- .*\n)+)", text)
    assert block, "the compose file documents the port mappings for bridge networking"
    specs = re.findall(r'-\s+"([^"]+)"', block.group(1))
    assert scale_ports_reachable({"ports": specs}) == SCALE_PORTS


def test_other_services_are_not_on_the_host_network(compose: dict[str, Any]) -> None:
    for name in ("influxdb", "grafana"):
        assert "network_mode" not in compose["services"][name]
    influx_ports = [str(spec) for spec in compose["services"]["influxdb"]["ports"]]
    assert influx_ports and all(spec.startswith("127.0.0.1:") for spec in influx_ports), "InfluxDB: loopback only"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service and name == "interceptor":
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert re.fullmatch(r"\d+(\.\d+){0,2}", tag), f"{name}: {image} is not pinned to a major version"
    assert compose["services"]["influxdb"]["image"].split(":")[1].split(".")[0] == "2"


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of the service's bind mounts; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume["type"] == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes", []):
        source = volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0]
        if isinstance(volume, dict) and volume["type"] != "volume":
            continue
        if not source.startswith((".", "/", "~")):
            names.append(source)
    return names


def test_mounts_exist_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for source, _ in bind_mounts(service):
            assert (DEPLOY / source).exists(), f"{name}: {source} does not exist in the repository"
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: volume {volume} is not declared"
    journal = [volume.split(":")[0] for volume in compose["services"]["interceptor"]["volumes"]
               if isinstance(volume, str) and volume.split(":")[1] == "/var/lib/interceptor"]
    assert journal and journal[0] in declared, "the journal lives on a named volume"


def test_grafana_provisioning_is_mounted_where_grafana_reads_it(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {PurePosixPath(target): (DEPLOY / source).resolve() for source, target in bind_mounts(grafana)}
    provisioning = PurePosixPath("/etc/grafana/provisioning")
    for kind in ("datasources", "dashboards"):
        assert mounts.get(provisioning / kind) == GRAFANA / "provisioning" / kind, kind
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "interceptor.yaml").read_text())
    dashboards_path = PurePosixPath(provider["providers"][0]["options"]["path"])
    assert mounts.get(dashboards_path) == GRAFANA / "dashboards", "the provider's path must be the mounted dashboards"
    home = PurePosixPath(service_env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (GRAFANA / "dashboards" / home.relative_to(dashboards_path)).is_file()
    assert all(":ro" in volume for volume in grafana["volumes"] if isinstance(volume, str) and volume.startswith("."))


def test_grafana_gets_every_variable_the_datasource_file_reads(compose: dict[str, Any]) -> None:
    text = (GRAFANA / "provisioning" / "datasources" / "interceptor.yaml").read_text(encoding="utf-8")
    active = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    wanted = set(re.findall(r"\$\{(\w+)\}", active))
    assert wanted >= {"INFLUX_URL", "INFLUX_DATABASE", "INFLUX_TOKEN"}
    environment = service_env(compose["services"]["grafana"])
    assert wanted <= set(environment), f"Grafana lacks {wanted - set(environment)}"
    assert environment["INFLUX_URL"] == "http://influxdb:8086", "Grafana reaches InfluxDB by service name"


def test_influx_settings_agree_and_the_config_loader_accepts_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    interceptor, influx, grafana = (service_env(services[name]) for name in ("interceptor", "influxdb", "grafana"))
    # InfluxDB 2's virtual DBRP mapping: bucket `scales` is the InfluxQL database `scales`.
    assert influx["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    bucket, token = influx["DOCKER_INFLUXDB_INIT_BUCKET"], influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert interceptor["INTERCEPTOR_INFLUX__BUCKET"] == bucket == grafana["INFLUX_DATABASE"]
    assert interceptor["INTERCEPTOR_INFLUX__ORG"] == influx["DOCKER_INFLUXDB_INIT_ORG"]
    assert interceptor["INTERCEPTOR_INFLUX__TOKEN"] == token == grafana["INFLUX_TOKEN"]
    published = {parse_port(spec)[0] for spec in services["influxdb"]["ports"]}
    url = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", interceptor["INTERCEPTOR_INFLUX__URL"])
    assert url and int(url.group(1)) in published, "on the host network the interceptor uses the loopback port"
    config = load_config(ROOT / "interceptor.example.toml", interceptor)
    assert config.influx.enabled and config.influx.dialect == "v2"
    assert config.influx.bucket == influx["DOCKER_INFLUXDB_INIT_BUCKET"]


def test_interceptor_mounts_match_the_command(compose: dict[str, Any]) -> None:
    service = compose["services"]["interceptor"]
    targets = {target for _, target in bind_mounts(service)}
    targets |= {volume.split(":")[1] for volume in service["volumes"] if isinstance(volume, str)}
    assert {SERVE_COMMAND[2], SERVE_COMMAND[4]} <= targets
    (config_mount,) = (volume for volume in service["volumes"] if isinstance(volume, dict))
    assert config_mount["read_only"] is True and config_mount["bind"]["create_host_path"] is False


# --------------------------------------------------------------------------------------------------
# The Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, argument = line.strip().partition(" ")
            instructions.append((keyword.upper(), argument.strip()))
    return instructions


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [argument for keyword, argument in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the server runs as a non-root user"
    last_user = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in instructions[last_user:]), "nothing runs as root after USER"
    entrypoint = json.loads(next(argument for keyword, argument in instructions if keyword == "ENTRYPOINT"))
    command = json.loads(next(argument for keyword, argument in instructions if keyword == "CMD"))
    assert entrypoint + command == ["interceptor", *SERVE_COMMAND]
    runs = " ".join(argument for keyword, argument in instructions if keyword == "RUN")
    assert re.search(r"pip install /src\b", runs), "the project is pip-installed"
    assert "setcap cap_net_bind_service=+ep" in runs, "ports 53 and 80 on the host network as non-root"
    exposed = {token for keyword, argument in instructions if keyword == "EXPOSE" for token in argument.split()}
    assert {f"{port}/{protocol}" for port, protocol in SCALE_PORTS} <= exposed


def test_dockerfile_copies_only_what_the_context_sends() -> None:
    ignore = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", "send nothing by default (.venv, data, captures stay out of the image)"
    kept = {pattern[1:].rstrip("/") for pattern in ignore if pattern.startswith("!")}
    for keyword, argument in dockerfile_instructions():
        if keyword == "COPY":
            *sources, _ = shlex.split(argument)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in kept, f"{source} is excluded from the build context"
