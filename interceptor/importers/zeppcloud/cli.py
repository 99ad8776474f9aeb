"""`interceptor import zepp`: Mi Body Composition Scale 2 and Mi Smart Scale 2 history from Zepp Life.

Signing in (`--xiaomi-account` or `--zepp-account`) is asked for once and its token kept; Zepp keeps
one sign-in per account, so the command says first that the phone app will be signed out and asks
to go on (`--yes` answers for scripts). Records go through the same import door and merge rule as
the Xiaomi history: one scale, one minute, one weigh-in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import click

from interceptor import runtime
from interceptor.command import UserError, ask, common_options, dry_run_option, load, parse_since
from interceptor.config import Config
from interceptor.importers.cloud.door import Door
from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.http import Http
from interceptor.importers.cloud.members import Members, check_members, imported
from interceptor.importers.cloud.records import Skip
from interceptor.importers.cloud.report import Progress, report
from interceptor.importers.records import Refusal
from interceptor.importers.summary import Summary
from interceptor.importers.xiaomi.account import Account
from interceptor.importers.xiaomi.cli import PROMPTS
from interceptor.importers.xiaomi.devices import ble_mac
from interceptor.importers.xiaomi.importing import CLOUD_RULE, count, where
from interceptor.importers.zeppcloud import client
from interceptor.importers.zeppcloud.records import OWNER_MEMBER, zepp_record
from interceptor.pipeline import Imported

SOURCE = "zepp"
LOGOUT_WARNING = ("Zepp keeps one sign-in per account: signing in here signs the Zepp Life app on your phone out "
                  "(sign in there again when the import is done). The token is kept in {path} for later imports.")


def _confirm(path: str, yes: bool) -> None:
    click.echo(LOGOUT_WARNING.format(path=path), err=True)
    if yes:
        return
    answer = ask("Sign in to Zepp and sign the phone app out? [y/N]").strip().lower()
    if answer not in ("y", "yes"):
        raise UserError("not signed in to Zepp: nothing was imported")


async def _member_pages(http: Http, config: Config, members: Members, session: client.ZeppSession, member: str,
                        family: dict[str, str], since: datetime | None, now: datetime,
                        summary: Summary) -> AsyncIterator[list[Imported]]:
    """One family member's pages as pipeline items; records left out go into `summary`."""
    previous: set[str] = set()
    pages = client.weight_pages(http, config.xiaomi, session, member, int(now.timestamp()),
                                int(since.timestamp()) if since else None)
    async for page in pages:
        items: list[Imported] = []
        current: set[str] = set()
        for index, item in enumerate(page):
            record = zepp_record(item, family, now)
            if isinstance(record, Skip):
                summary.skip(Refusal(f"member {member} record {index + 1}", record.reason))
                continue
            if (since is not None and record.taken_at < since) or record.key in previous or record.key in current:
                continue
            current.add(record.key)
            device_id = ble_mac(record.device) or f"zepp:{record.device or session.user_id}"
            items.append(imported(record, source=SOURCE, device_id=device_id, device_model=None,
                                  user=members.person_for(record), received_at=now, origin=where(record)))
        previous = current
        yield items


@click.command("zepp")
@common_options
@click.option("--xiaomi-account", "xiaomi_user", metavar="USER",
              help="sign in with this Xiaomi account (e-mail, phone or id); signs the phone app out")
@click.option("--zepp-account", "zepp_email", metavar="EMAIL",
              help="sign in with this Zepp (Amazfit) account; signs the phone app out")
@click.option("--yes", is_flag=True, help="do not ask before signing the phone app out")
@click.option("--since", help="only weigh-ins from this date (YYYY-MM-DD)")
@dry_run_option
def import_zepp_command(xiaomi_user: str | None, zepp_email: str | None, yes: bool, since: str | None,
                        dry_run: bool) -> None:
    """Import Mi Body Composition Scale 2 / Mi Smart Scale 2 history from Zepp Life (Mi Fit)."""
    config = load()
    try:
        check_members(config)
    except CloudError as error:
        raise UserError(str(error), 2) from None
    if xiaomi_user and zepp_email:
        raise UserError("use --xiaomi-account or --zepp-account, not both")
    store = client.ZeppStore(config.data_dir)
    password = None
    if xiaomi_user or zepp_email:
        _confirm(str(store.path), yes)
        password = ask("Xiaomi password" if xiaomi_user else "Zepp password", secret=True)
    since_moment = parse_since(since, config)
    now = datetime.now(UTC)
    members = Members(config)

    async def job() -> Summary:
        async with Http() as http:
            if xiaomi_user and password is not None:
                account = Account(http, config.xiaomi.account_url, config.data_dir, PROMPTS)
                session = await client.sign_in_xiaomi(http, account, config.xiaomi, xiaomi_user, password)
                store.save(session)
            elif zepp_email and password is not None:
                session = await client.sign_in_zepp(http, config.xiaomi, zepp_email, password)
                store.save(session)
            else:
                stored = store.load()
                if stored is None:
                    raise CloudError(f"not signed in to Zepp: {client.SIGN_IN}")
                session = stored
            family = await client.family(http, config.xiaomi, session)
            summary = Summary("Zepp Life", f"account {session.user_id}")
            progress = Progress()
            async with Door(config, dry_run=dry_run) as door:
                pages = 0
                try:
                    for member in [OWNER_MEMBER, *family]:
                        async for items in _member_pages(http, config, members, session, member, family,
                                                         since_moment, now, summary):
                            pages += 1
                            count(summary, await door.send(items, CLOUD_RULE))
                            progress.show(summary, pages)
                finally:
                    progress.done()
            return summary

    try:
        summary = runtime.run(job())
    except CloudError as error:
        raise UserError(str(error)) from None
    report([summary], config, dry_run=dry_run)
