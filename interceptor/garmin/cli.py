"""`interceptor garmin login|logout` and `interceptor export garmin`.

Thin shells: ask what only the person can answer (e-mail, password, the code Garmin sent), call the
modules next to this one, print one line per failure. Without the optional extra, every command
says the one pip command that installs it. Nothing printed holds a password or a token.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from interceptor import runtime
from interceptor.command import UserError, ask, common_options, load, open_journal, parse_since
from interceptor.config import Config
from interceptor.exporters.cli import person_for
from interceptor.exporters.fit import MAX_PER_FILE
from interceptor.garmin import library
from interceptor.garmin.library import GarminError, NotInstalled
from interceptor.garmin.tokens import TokenStore
from interceptor.garmin.uploader import NOTHING, Outcome, Uploader
from interceptor.store.journal import FIRST, Filter, Journal


def _person(config: Config, slug: str | None) -> str:
    person = person_for(config, slug, "garmin")
    assert person is not None
    return person


def _require_library() -> None:
    if not library.available():
        raise UserError(str(NotInstalled()))


def _code() -> str:
    click.echo("Garmin sent a verification code (by e-mail or text message, as your account is set up).", err=True)
    return ask("Verification code")


def sign_in(config: Config, person: str, email: str | None) -> None:
    store = TokenStore(config.data_dir, person)
    email = email or ask(f"Garmin Connect e-mail of {person}")
    password = ask("Garmin Connect password", secret=True)
    try:
        state, name = library.sign_in(email, password, _code, config.garmin.domain)
        store.save(state, name)
    except GarminError as error:
        raise UserError(str(error)) from None
    click.echo(f"signed in to Garmin Connect as {name or email} for {person}; the sign-in is kept in {store.path} "
               "(readable by you only)", err=True)


@click.group("garmin")
def garmin_group() -> None:
    """Garmin Connect sign-in, per person (uploads: `interceptor export garmin`)."""


@garmin_group.command("login")
@common_options
@click.option("--user", "slug", help="the person whose Garmin account this is (needed with several people)")
@click.option("--email", help="the Garmin Connect e-mail (asked if not given)")
def login_command(slug: str | None, email: str | None) -> None:
    """Sign in to a person's Garmin Connect account (password, then the code Garmin sends, if it asks)."""
    config = load()
    person = _person(config, slug)
    _require_library()
    sign_in(config, person, email)


@garmin_group.command("logout")
@common_options
@click.option("--user", "slug", help="the person (needed with several people)")
def logout_command(slug: str | None) -> None:
    """Forget a person's Garmin sign-in on this box."""
    config = load()
    store = TokenStore(config.data_dir, _person(config, slug))
    if store.remove():
        click.echo(f"removed {store.path}: {store.person} is signed out of Garmin Connect on this box", err=True)
    else:
        click.echo(f"no Garmin sign-in at {store.path}: nothing to do", err=True)


@dataclass
class _Stopped(Exception):
    """An upload failed after `done` had gone through."""

    error: GarminError
    done: Outcome


async def _upload(journal: Journal, uploader: Uploader, where: Filter, dry_run: bool) -> Outcome:
    """The person's weigh-ins, one file of at most 200 at a time (flat memory, whatever the history)."""
    done, after = NOTHING, FIRST
    try:
        while page := await journal.read(lambda reader, last=after: reader.page(where, after=last, limit=MAX_PER_FILE)):
            ids = [identifier for _, identifier in page]
            found = await journal.read(lambda reader, chunk=ids: reader.measurements_by_id(chunk))
            done += await uploader.send([found[identifier] for identifier in ids if identifier in found],
                                        dry_run=dry_run)
            after = page[-1]
    except GarminError as error:
        raise _Stopped(error, done) from None
    return done


def _summary(person: str, outcome: Outcome, files: int, dry_run: bool) -> list[str]:
    lines = [f"dry run: {outcome.sent} weigh-in(s) of {person} would go to Garmin Connect in {files} file(s); "
             "nothing was sent" if dry_run else
             f"sent {outcome.sent} weigh-in(s) of {person} to Garmin Connect in {files} file(s)"]
    if outcome.unchanged:
        lines.append(f"{outcome.unchanged} weigh-in(s) were sent before and are not sent again")
    if outcome.changed:
        shown = ", ".join(str(identifier) for identifier in outcome.changed[:10])
        more = ", ..." if len(outcome.changed) > 10 else ""
        lines.append(f"{len(outcome.changed)} weigh-in(s) changed after they were sent (recomputed: {shown}{more}); "
                     "not sent again, since Garmin would keep both the old and the new one")
    return lines


@click.command("garmin")
@common_options
@click.option("--user", "slug", help="the person (needed with several people)")
@click.option("--since", help="only from this date or time (YYYY-MM-DD, local time unless an offset is given)")
@click.option("--dry-run", is_flag=True, help="say what would be sent; send nothing")
@click.option("--login", "login_first", is_flag=True, help="sign in first (asks e-mail, password and code)")
def export_garmin(slug: str | None, since: str | None, dry_run: bool, login_first: bool) -> None:
    """Upload a person's weigh-ins to their Garmin Connect account as FIT weight files; each weigh-in
    goes once, however often this runs."""
    config = load()
    person = _person(config, slug)
    _require_library()
    where = Filter(user=person, since=parse_since(since, config), kind="body")
    store = TokenStore(config.data_dir, person)
    journal = open_journal(config)  # no sinks: uploading changes no weigh-in
    try:
        if login_first:
            sign_in(config, person, None)
        elif not dry_run:
            try:
                store.require()
            except GarminError as error:
                raise UserError(str(error)) from None
        uploader = Uploader(journal, store, config.garmin.domain)
        try:
            outcome = runtime.run(_upload(journal, uploader, where, dry_run))
        except _Stopped as stopped:
            if stopped.done.sent:
                click.echo(f"{stopped.done.sent} weigh-in(s) of {person} went to Garmin Connect before that, and are "
                           "remembered", err=True)
            raise UserError(str(stopped.error)) from None
    finally:
        journal.close()
    for line in _summary(person, outcome, uploader.files, dry_run):
        click.echo(line, err=True)
