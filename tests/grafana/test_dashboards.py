"""The provisioned Grafana files: their structure, their agreement with docs/schema.md, and every
InfluxQL query they contain run against a real influxd seeded with data that follows the schema.

No Grafana server can run here (reference dns-influx-grafana.md §4), so Grafana's part is played by
this file: it substitutes the macros the way Grafana renders them for InfluxQL (`$timeFilter` as
`time >= …ms and time <= …ms`, `$__interval`, a multi-value variable as a regex group) and checks
what a Grafana server would only show as an empty panel: InfluxDB answers a misspelt measurement or
field with HTTP 200 and no series (§3.4), so every query must return series, and every column it
asks for must have a value somewhere.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana.conftest import Seed

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES_YAML = GRAFANA / "provisioning" / "datasources" / "interceptor.yaml"
PROVIDERS_YAML = GRAFANA / "provisioning" / "dashboards" / "interceptor.yaml"
SCHEMA_MD = ROOT / "docs" / "schema.md"

GRID_COLUMNS = 24
# Variables Grafana itself defines for InfluxQL queries; anything else must be a dashboard variable.
BUILTIN_VARIABLES = {"timeFilter", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                     "__from", "__to", "__dashboard", "__org", "__user"}
# What an InfluxDB alias may contain besides variables: the InfluxQL alias patterns.
ALIAS_PATTERN = re.compile(r"\$(tag_\w+|col|m|measurement)\b")
VARIABLE_USE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
# Grafana unit id for each unit written in docs/schema.md; a field whose unit is missing here cannot be
# put on a panel until someone decides how Grafana should show it.
GRAFANA_UNIT = {"kg": "masskg", "%": "percent", "1/min": "bpm", "°C": "celsius", "ppm": "ppm",
                "kg/m²": "suffix: kg/m²", "index": "none"}
TIME_UNITS = {"dateTimeAsLocal", "dateTimeAsIso", "dateTimeFromNow"}
TIME_SERIES_PANELS = {"timeseries", "stat", "gauge", "bargauge"}


# --------------------------------------------------------------------------------------------------
# The contract: docs/schema.md


@dataclass(frozen=True)
class Field:
    unit: str
    method: str | None  # the fixed method of a metric whose method the schema names, e.g. bmi
    metric: bool  # a body-composition metric: it must be shown with its method


@dataclass(frozen=True)
class Measurement:
    tags: frozenset[str]
    fields: dict[str, Field]


def _table_rows(section: str, first_header: str) -> list[list[str]]:
    rows: list[list[str]] = []
    inside = False
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            inside = False
        elif cells[0] == first_header:
            inside = True
        elif inside and not set(cells[0]) <= {"-", ":", " "}:
            rows.append(cells)
    return rows


def parse_schema(text: str) -> dict[str, Measurement]:
    """Measurements, tags and fields (with units) from the tables of docs/schema.md."""
    sections = re.split(r"^## `(\w+)`.*$", text, flags=re.MULTILINE)
    schema: dict[str, Measurement] = {}
    for name, section in zip(sections[1::2], sections[2::2], strict=True):
        tags: set[str] = set()
        for row in _table_rows(section, "tag"):
            tags |= set(re.findall(r"`(\w+)`", row[0]))
        fields: dict[str, Field] = {}
        for row in _table_rows(section, "field"):
            source = row[2] if len(row) > 2 else ""
            fixed = re.search(r"method `(\w+)`", source)
            for field in re.findall(r"`(\w+)`", row[0]):
                fields[field] = Field(row[1], fixed.group(1) if fixed else None, source.startswith("metric"))
        schema[name] = Measurement(frozenset(tags), fields)
    return schema


SCHEMA = parse_schema(SCHEMA_MD.read_text(encoding="utf-8"))


def test_schema_parser_reads_the_contract() -> None:
    """Guards the parser: if docs/schema.md changes shape, the checks below must not go silently blind."""
    assert set(SCHEMA) == {"body", "environment", "device"}
    assert {"user", "device", "model", "source", "method"} <= SCHEMA["body"].tags
    assert SCHEMA["environment"].tags == {"device", "model", "source"}
    assert SCHEMA["body"].fields["weight_kg"] == Field("kg", None, False)
    assert SCHEMA["body"].fields["bmi"] == Field("kg/m²", "anthropometric", True)
    assert SCHEMA["body"].fields["body_fat_pct"] == Field("%", None, True)
    assert SCHEMA["body"].fields["visceral_fat"].unit == "index"
    assert SCHEMA["environment"].fields["co2_ppm"].unit == "ppm"
    assert set(SCHEMA["device"].fields) == {"battery_pct", "firmware"}


# --------------------------------------------------------------------------------------------------
# The provisioning files


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def provisioned_datasource() -> dict[str, Any]:
    entries = load_yaml(DATASOURCES_YAML)["datasources"]
    assert len(entries) == 1, "one data source: every dashboard refers to it by uid"
    return entries[0]


DATASOURCE_UID = provisioned_datasource()["uid"]


def test_datasource_is_influxql_with_placeholders() -> None:
    document = load_yaml(DATASOURCES_YAML)
    assert document["apiVersion"] == 1
    source = provisioned_datasource()
    assert source["uid"] == "interceptor-influxdb"
    assert source["type"] == "influxdb"
    assert source["access"] == "proxy"
    assert source["jsonData"]["version"] == "InfluxQL", "InfluxQL is what 1.x, 2.x (DBRP) and 3.x all answer"
    assert "database" not in source, "`database` is deprecated: jsonData.dbName"
    # Nothing site-specific is written in the file: Grafana fills these from its environment.
    assert re.fullmatch(r"\$\{INFLUX_URL\}", source["url"])
    assert re.fullmatch(r"\$\{INFLUX_DATABASE\}", source["jsonData"]["dbName"])
    # 2.x: the token in an `Authorization: Token …` header (reference §4), never in jsonData.
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    assert not re.search(r"(?i)token|password", json.dumps(source["jsonData"]).replace("httpHeaderName1", ""))


def test_datasource_comments_hold_a_valid_1x_alternative() -> None:
    """The commented 1.x form must be a drop-in replacement: valid YAML, same uid, user/password."""
    text = DATASOURCES_YAML.read_text(encoding="utf-8")
    block = text[text.index("\n#  - name:") + 1:]
    alternative = yaml.safe_load("\n".join(line.removeprefix("#") for line in block.splitlines()))
    assert isinstance(alternative, list) and len(alternative) == 1
    entry = alternative[0]
    assert entry["uid"] == DATASOURCE_UID
    assert entry["jsonData"]["version"] == "InfluxQL"
    assert entry["user"] == "${INFLUX_USERNAME}"
    assert entry["secureJsonData"]["password"] == "${INFLUX_PASSWORD}"
    assert "dbrp" in text.lower(), "the 2.x form needs a DBRP mapping; the file must say how"


def test_dashboard_provider_is_a_file_provider() -> None:
    document = load_yaml(PROVIDERS_YAML)
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    assert provider["allowUiUpdates"] is False


# --------------------------------------------------------------------------------------------------
# Dashboard structure


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def targets_of(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query


def test_there_are_dashboards_with_unique_uids_and_titles() -> None:
    assert len(DASHBOARDS) >= 2
    dashboards = [load_dashboard(path) for path in DASHBOARDS]
    uids = [dashboard["uid"] for dashboard in dashboards]
    titles = [dashboard["title"] for dashboard in dashboards]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    linked = {re.sub(r"^/d/", "", link["url"]) for dashboard in dashboards for link in dashboard.get("links", [])}
    assert linked <= set(uids), "dashboard links must point at provisioned dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"].strip()
    assert dashboard.get("id") is None, "a fixed numeric id clashes with Grafana's own on provisioning"
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert panels
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(panel_id, int) for panel_id in ids) and len(set(ids)) == len(ids)
    boxes = []
    for panel in panels:
        assert panel["title"].strip()
        grid = panel["gridPos"]
        x, y, w, h = (grid[key] for key in ("x", "y", "w", "h"))
        assert all(isinstance(value, int) for value in (x, y, w, h)), panel["title"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= GRID_COLUMNS, panel["title"]
        boxes.append((panel["title"], x, y, w, h))
    for (one, x1, y1, w1, h1), (other, x2, y2, w2, h2) in itertools.combinations(boxes, 2):
        overlap = x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and y2 < y1 + h1
        assert not overlap, f"panels {one!r} and {other!r} overlap"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_uses_the_provisioned_datasource(path: Path) -> None:
    dashboard = load_dashboard(path)
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert all(ref_ids) and len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in targets:
            assert target["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, panel["title"]
            assert target["rawQuery"] is True, "the query text is what runs only when rawQuery is set"
            assert target["resultFormat"] in {"time_series", "table"}
            assert target["query"].lstrip().upper().startswith("SELECT ")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, variable["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_variables_are_defined_and_used(path: Path) -> None:
    dashboard = load_dashboard(path)
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    texts = [target["query"] for _, target in targets_of(dashboard)]
    texts += [ALIAS_PATTERN.sub("", target.get("alias", "")) for _, target in targets_of(dashboard)]
    texts += [panel["title"] for panel in dashboard["panels"]]
    texts += [variable_query(variable) for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    used = {next(name for name in match.groups() if name) for text in texts for match in VARIABLE_USE.finditer(text)}
    assert used <= defined | BUILTIN_VARIABLES, f"undefined: {used - defined - BUILTIN_VARIABLES}"
    assert defined <= used, f"defined but never used: {defined - used}"


def test_person_variable() -> None:
    dashboard = load_dashboard(GRAFANA / "dashboards" / "interceptor-body.json")
    (person,) = (variable for variable in dashboard["templating"]["list"] if variable["name"] == "person")
    assert person["type"] == "query"
    assert variable_query(person) == 'SHOW TAG VALUES FROM "body" WITH KEY = "user"'
    assert person["refresh"] in (1, 2), "refresh the list of people when the dashboard loads"
    # Every weigh-in query follows the selection, else one person's panel shows everybody.
    for panel, target in targets_of(dashboard):
        if parse_influxql(target["query"]).measurement == "body":
            assert '"user" =~ /^$person$/' in target["query"], f"{panel['title']}: ignores $person"
    # Multi-value: every use must be a regex match, which is how Grafana inserts several values.
    for _, target in targets_of(dashboard):
        for match in re.finditer(r'"user"\s*(=~|=|!=|!~)\s*(\S+)', target["query"]):
            assert match.group(1) == "=~" and match.group(2) == "/^$person$/", target["query"]


# --------------------------------------------------------------------------------------------------
# Agreement with docs/schema.md: names, units, methods


@dataclass(frozen=True)
class Parsed:
    measurement: str
    fields: list[str]  # field keys the SELECT reads
    tags: set[str]  # tag keys selected, grouped by or filtered on


def parse_influxql(query: str) -> Parsed:
    match = re.match(r'\s*SELECT\s+(.*?)\s+FROM\s+"(\w+)"(.*)$', query, flags=re.IGNORECASE | re.DOTALL)
    assert match, f"not a SELECT … FROM \"measurement\": {query}"
    select, measurement, rest = match.groups()
    select_tags = set(re.findall(r'"(\w+)"::tag', select))
    without_aliases = re.sub(r'\bAS\s+"[^"]*"', "", re.sub(r'"\w+"::tag', "", select), flags=re.IGNORECASE)
    fields = re.findall(r'"(\w+)"', without_aliases)
    group_by = re.search(r"\bGROUP BY\s+(.*?)(?:\s+fill\(|\s+ORDER BY|\s+LIMIT|$)", rest, flags=re.IGNORECASE)
    group_tags = set(re.findall(r'"(\w+)"', group_by.group(1))) if group_by else set()
    where_tags = set(re.findall(r'"(\w+)"\s*(?:=~|!~|=|!=|<>)', rest))
    return Parsed(measurement, fields, select_tags | group_tags | where_tags)


def overrides_by_name(panel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"]["id"] == "byName":
            result[override["matcher"]["options"]] = {item["id"]: item["value"] for item in override["properties"]}
    return result


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_queries_use_only_schema_names(path: Path) -> None:
    for panel, target in targets_of(load_dashboard(path)):
        parsed = parse_influxql(target["query"])
        assert parsed.measurement in SCHEMA, f"{panel['title']}: unknown measurement {parsed.measurement}"
        measurement = SCHEMA[parsed.measurement]
        assert parsed.fields, f"{panel['title']}: selects no field"
        unknown_fields = set(parsed.fields) - set(measurement.fields)
        assert not unknown_fields, f"{panel['title']}: not fields of {parsed.measurement}: {unknown_fields}"
        unknown_tags = parsed.tags - measurement.tags
        assert not unknown_tags, f"{panel['title']}: not tags of {parsed.measurement}: {unknown_tags}"


def test_influxql_parser_sees_fields_tags_and_aliases() -> None:
    parsed = parse_influxql('SELECT mean("fat_mass_kg") AS "fat mass", "user"::tag FROM "body" WHERE "user" =~ /^x$/ '
                            'AND $timeFilter GROUP BY time(1h), "method" fill(none)')
    assert parsed == Parsed("body", ["fat_mass_kg"], {"user", "method"})


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_show_units_from_the_schema(path: Path) -> None:
    for panel in load_dashboard(path)["panels"]:
        queried = [(SCHEMA[parsed.measurement].fields[field], field)
                   for parsed in (parse_influxql(target["query"]) for target in panel["targets"])
                   for field in parsed.fields]
        if panel["type"] in TIME_SERIES_PANELS:
            expected = {GRAFANA_UNIT[spec.unit] for spec, _ in queried}
            assert len(expected) == 1, f"{panel['title']}: fields of different units in one panel: {queried}"
            assert panel["fieldConfig"]["defaults"].get("unit") == expected.pop(), panel["title"]
        elif panel["type"] == "table":
            overrides = overrides_by_name(panel)
            for spec, field in queried:
                if spec.unit == "string":
                    continue
                assert overrides.get(field, {}).get("unit") == GRAFANA_UNIT[spec.unit], f"{panel['title']}: {field}"
            assert overrides.get("Time", {}).get("unit") in TIME_UNITS, panel["title"]
        else:
            pytest.fail(f"{panel['title']}: panel type {panel['type']} has no unit rule here")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_metrics_are_shown_with_their_method(path: Path) -> None:
    """DESIGN.md: a number without its method is not shown to a user."""
    for panel, target in targets_of(load_dashboard(path)):
        parsed = parse_influxql(target["query"])
        for field in parsed.fields:
            spec = SCHEMA[parsed.measurement].fields[field]
            if not spec.metric:
                continue
            if target["resultFormat"] == "table":
                shown = overrides_by_name(panel).get(field, {}).get("displayName", "")
                method_column = '"method"::tag' in target["query"]
                fixed_in_header = spec.method is not None and spec.method in shown
                assert method_column or fixed_in_header, f"{panel['title']}: {field} without its method"
            elif spec.method:
                assert spec.method in target["alias"] or "$tag_method" in target["alias"], panel["title"]
            else:
                assert "method" in parsed.tags and "$tag_method" in target["alias"], (
                    f"{panel['title']}: {field} must be grouped by method and the legend must name it")


# --------------------------------------------------------------------------------------------------
# Every query, run for real


def render(query: str, seed: Seed, values: dict[str, str]) -> str:
    """Substitute what Grafana substitutes before it sends an InfluxQL query."""
    rendered = query.replace("$timeFilter", f"time >= {seed.start * 1000}ms and time <= {(seed.end + 60) * 1000}ms")
    rendered = rendered.replace("$__interval_ms", "3600000").replace("$__interval", "1h")
    for name, value in values.items():
        for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            rendered = rendered.replace(form, value)
    leftover = VARIABLE_USE.search(rendered)
    assert leftover is None, f"not substituted: {leftover.group(0)} in {rendered}"
    return rendered


def run(seed: Seed, statement: str) -> list[dict[str, Any]]:
    try:
        answer = seed.influx.query(statement, seed.database)
    except urllib.error.HTTPError as error:  # a syntax error is a 400 with {"error": "..."}
        pytest.fail(f"HTTP {error.code}: {error.read().decode(errors='replace')}\n{statement}")
    assert "error" not in answer, f"{answer['error']}\n{statement}"
    (result,) = answer["results"]
    assert "error" not in result, f"{result['error']}\n{statement}"
    series: list[dict[str, Any]] = result.get("series", [])
    assert series, f"no series (a misspelt measurement, field or tag answers 200 and empty):\n{statement}"
    return series


def assert_every_column_has_data(series: list[dict[str, Any]], statement: str) -> None:
    columns = series[0]["columns"]
    for index, column in enumerate(columns):
        if column == "time":
            continue
        values = [row[index] for one in series for row in one["values"]]
        assert any(value is not None for value in values), f"column {column!r} is empty in every row:\n{statement}"


def variable_selections(dashboard: dict[str, Any], seed: Seed) -> list[dict[str, str]]:
    """What Grafana may substitute for each variable: each seeded user alone, and the 'All' selection
    of a multi-value variable (the options its own query finds, as a regex group)."""
    selections: list[dict[str, str]] = [{}]
    for variable in dashboard["templating"]["list"]:
        rows = run(seed, render(variable_query(variable), seed, {}))[0]["values"]
        options = [row[1] for row in rows]
        assert set(seed.users) <= set(options), f"${variable['name']} lists {options}"
        choices = list(seed.users)
        if variable.get("multi") or variable.get("includeAll"):
            choices.append("(" + "|".join(re.escape(option) for option in options) + ")")
        selections = [{**chosen, variable["name"]: choice} for chosen in selections for choice in choices]
    return selections


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_returns_data(path: Path, seeded: Seed) -> None:
    dashboard = load_dashboard(path)
    selections = variable_selections(dashboard, seeded)
    ran = 0
    for panel, target in targets_of(dashboard):
        for values in selections:
            statement = render(target["query"], seeded, values)
            series = run(seeded, statement)
            assert_every_column_has_data(series, statement)
            if "$person" in target["query"]:
                # Whose data came back must show (legend or column), and be whom the variable selected.
                seen, person = _users_in(series), values["person"]
                expected = {person} if person in seeded.users else set(seeded.users)
                assert expected <= seen <= expected | {"unassigned"}, f"{panel['title']}: {person} gave {seen}"
            ran += 1
    assert ran >= len(targets_of(dashboard))


def _users_in(series: list[dict[str, Any]]) -> set[str]:
    users = {one["tags"]["user"] for one in series if "user" in one.get("tags", {})}
    for one in series:
        if "user" in one["columns"]:
            index = one["columns"].index("user")
            users |= {row[index] for row in one["values"]}
    return users


def test_seed_follows_the_schema(seeded: Seed) -> None:
    """The data the queries run against is what the sink writes: only schema names, floats for numbers."""
    for measurement, spec in SCHEMA.items():
        keys = run(seeded, f'SHOW FIELD KEYS FROM "{measurement}"')[0]["values"]
        for field, kind in keys:
            assert field in spec.fields, f"{measurement}.{field} is not in docs/schema.md"
            assert kind == ("string" if spec.fields[field].unit == "string" else "float"), field
        tag_keys = {row[0] for row in run(seeded, f'SHOW TAG KEYS FROM "{measurement}"')[0]["values"]}
        assert tag_keys == set(spec.tags), measurement
