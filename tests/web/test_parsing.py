"""The page's sans-I/O parts: query and form parameters (fuzzed: anything gives a value or BadInput, never
another exception), how numbers and moments read, the chart's folding, and the DNS answer record."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dnslib import QTYPE, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from interceptor.dns.answers import Answered, InterceptLog
from interceptor.dns.resolver import Resolver
from interceptor.dns.settings import DnsSettings
from interceptor.store.household import Cursor
from interceptor.web import chart, params, views, words

PARIS = ZoneInfo("Europe/Paris")


@given(st.text(max_size=120))
def test_every_parameter_parser_accepts_or_says_why(text: str) -> None:
    for parse in (params.time_range, params.cursor, params.measurement_id, params.slug,
                  lambda value: params.charts([value])):
        try:
            parse(text)
        except params.BadInput as error:
            assert str(error) and len(str(error)) < 300  # one bounded sentence, whatever was sent


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False), st.integers(min_value=1, max_value=2**63 - 1))
def test_a_page_cursor_survives_its_round_trip(taken_at: float, identifier: int) -> None:
    assert params.cursor(Cursor(taken_at, identifier).text()) == Cursor(taken_at, identifier)


def test_parameters_that_are_valid() -> None:
    assert params.time_range(None) == "3m" and params.time_range("all") == "all"
    assert params.charts(["water,fat", "fat"]) == ("fat", "water")
    assert params.measurement_id("42") == 42
    for bad in ("0", "-1", "1e3", "٣", "9" * 20):
        with pytest.raises(params.BadInput):
            params.measurement_id(bad)


@given(st.floats(min_value=1, max_value=400))
def test_a_weight_reads_back_within_its_rounding(kilograms: float) -> None:
    for unit in ("kg", "lb", "st"):
        text = words.weight(kilograms, unit)
        parts = text.split()
        pounds = (float(parts[0]) * 14 + float(parts[2])) if unit == "st" and "st" in parts else float(parts[0])
        shown = pounds if unit == "kg" else pounds * words.KG_PER_LB
        assert abs(shown - kilograms) <= 0.051, text
        if unit == "st" and "st" in parts:
            assert 0 <= float(parts[2]) < 14  # never "0 st 14.0 lb"


def test_words_a_person_reads() -> None:
    now = datetime(2025, 3, 5, 9, 30, tzinfo=PARIS)  # a Wednesday
    at = lambda *args: datetime(*args, tzinfo=PARIS)  # noqa: E731
    assert words.moment(at(2025, 3, 5, 7, 12), now, PARIS) == "this morning 07:12"
    assert words.moment(at(2025, 3, 4, 21, 40), now, PARIS) == "yesterday evening 21:40"
    assert words.moment(at(2025, 3, 3, 7, 5), now, PARIS) == "Monday 07:05"
    assert words.moment(at(2025, 1, 3, 7, 5), now, PARIS) == "3 January 07:05"
    assert words.moment(at(2023, 1, 3, 7, 5), now, PARIS) == "3 January 2023"
    assert words.moment(at(2025, 3, 3, 7, 5), now, PARIS, clock=False) == "Monday"
    assert words.moment(datetime(2025, 3, 5, 6, 12, tzinfo=UTC), now, PARIS) == "this morning 07:12"
    assert words.change(-0.34, "kg") == "\u22120.3 kg" and words.change(0.02, "st") == "±0.0 lb"
    assert words.weight(63.5, "st") == "10 st 0.0 lb" and words.weight(2.0, "st") == "4.4 lb"
    assert words.confidence("literature") == "estimated with a published equation"


def test_the_zones_offsets_and_the_moving_average() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    periods = chart.zone_offsets(PARIS, start, datetime(2025, 12, 31, tzinfo=UTC).timestamp())
    assert [(datetime.fromtimestamp(at, UTC).isoformat(), offset) for at, offset in periods] == [
        ("2025-01-01T00:00:00+00:00", 3600), ("2025-03-30T01:00:00+00:00", 7200),
        ("2025-10-26T01:00:00+00:00", 3600)]  # the EU's clock changes, to the second
    days = [chart.DayValue(date(2025, 1, 1) + timedelta(days=n), 80.0 + n) for n in range(10) if n != 4]
    average = chart.moving_average(days)
    assert average[-1].value == pytest.approx(sum(80.0 + d for d in (3, 5, 6, 7, 8, 9)) / 6)  # days 3..9


def test_a_decade_draws_a_bounded_chart() -> None:
    first, last = date(2015, 1, 1), date(2024, 12, 31)
    width = chart.bucket_width(first, last)
    assert width == 10 and (last - first).days / width <= chart.MAX_POINTS
    days = [chart.DayValue(first + timedelta(days=n), 70 + n % 5) for n in range(0, 3650, width)]
    svg = chart.svg(chart.series(days, width), title="<b>", tick_text=str)
    assert "<b>" not in svg and len(svg) < 20_000


def test_the_dns_record_keeps_what_each_client_was_told_and_stays_bounded() -> None:
    resolver = Resolver(DnsSettings(intercept=({"name": "scalews.withings.net", "address": "192.168.1.10"},)),
                        lambda client, listener, now: None)
    query = DNSRecord.question("scalews.withings.net", "A").pack()
    for now in (10.0, 20.0):
        assert isinstance(resolver.handle(query, "192.168.1.23", "0.0.0.0", now, False), bytes)
    resolver.handle(DNSRecord.question("example.org", "A").pack(), "192.168.1.23", "0.0.0.0", 30.0, False)
    (answered,) = resolver.intercepts.snapshot(now=20.0, wall_now=1_000_000.0)
    assert (answered.client, answered.name, answered.qtype, answered.count) == (
        "192.168.1.23", "scalews.withings.net", "A", 2)
    assert answered.addresses == ("192.168.1.10",) and answered.last_seen == 1_000_000.0
    small = InterceptLog(max_entries=3)
    for client in range(10):
        small.record(f"10.0.0.{client}", b"\x01a\x00", QTYPE.A, b"", float(client))
    assert [a.client for a in small.snapshot(9.0, 9.0)] == ["10.0.0.9", "10.0.0.8", "10.0.0.7"]
    assert small.snapshot(9.0, 9.0)[0].rcode == "unreadable"


def test_a_client_told_an_address_by_a_or_aaaa_is_fine_and_a_bare_aaaa_is_no_alarm() -> None:
    """An IPv4-only box answers AAAA without an address: the newest answer alone must not raise "!"."""
    now = datetime(2025, 3, 3, 12, tzinfo=UTC)
    seconds = now.timestamp()
    name = "scalews.withings.net"

    def answered(client: str, qtype: str, *addresses: str) -> Answered:
        return Answered(client, name, qtype, 1, seconds - 5, seconds - 5, "NOERROR", addresses)

    verdicts = views.dns_verdicts([answered("127.0.0.5", "AAAA"), answered("127.0.0.5", "A", "192.168.1.10"),
                                   answered("127.0.0.6", "HTTPS"), answered("127.0.0.6", "AAAA"),
                                   answered("127.0.0.7", "A")], now)
    assert [(v.ok, v.text) for v in verdicts] == [
        (True, f"127.0.0.5 asked for {name} moments ago and was told 192.168.1.10"),
        (True, f"127.0.0.6 asked for {name} moments ago and was told no address (NOERROR)"),
        (False, f"127.0.0.7 asked for {name} moments ago and was told no address (NOERROR)")]
