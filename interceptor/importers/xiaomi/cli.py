"""`interceptor xiaomi login|logout|devices` and `interceptor import xiaomi`.

Thin shells: ask what only the person can answer (password, captcha text, the code Xiaomi sent),
call the modules next to this one, print one line per failure. Secrets typed at a terminal are not
echoed; piped in (scripts, tests), they are read one line each from standard input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from interceptor import runtime
from interceptor.command import (
    UserError,
    ask,
    common_options,
    config_source,
    dry_run_option,
    format_option,
    load,
    parse_since,
    write_records,
)
from interceptor.config import Config
from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.http import Http
from interceptor.importers.xiaomi.account import Account, Prompts
from interceptor.importers.xiaomi.client import XiaomiApi, with_credentials
from interceptor.importers.xiaomi.devices import (
    BIND_KEY_PATH,
    DEVICE_LIST_DATA,
    DEVICE_LIST_PATH,
    CloudDevice,
    bluetooth_scales,
    parse_bind_key_answer,
    parse_device_list,
)
from interceptor.importers.xiaomi.session import XIAOMI_HOME, SessionStore, XiaomiSession
from interceptor.importers.xiaomi.settings import REGIONS

T = TypeVar("T")


# -- asking the person -------------------------------------------------------------------------------

def _captcha(path: Path) -> str:
    click.echo(f"Xiaomi wants a captcha: open {path} and type the characters it shows.", err=True)
    return ask("Captcha")


def _code(where: str) -> str:
    click.echo(f"Xiaomi sent a verification code to {where}.", err=True)
    return ask("Verification code")


PROMPTS = Prompts(captcha=_captcha, code=_code)


def _run(config: Config, job: Callable[[Http, Account, SessionStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Http() as http:
            account = Account(http, config.xiaomi.account_url, config.data_dir, PROMPTS)
            return await job(http, account, SessionStore(config.data_dir))

    try:
        return runtime.run(main())
    except CloudError as error:
        raise UserError(str(error)) from None


# -- the account's scales ------------------------------------------------------------------------------

async def list_devices(api: XiaomiApi, region: str | None = None) -> list[CloudDevice]:
    return parse_device_list(await api.call("home", DEVICE_LIST_PATH, dict(DEVICE_LIST_DATA), region=region))


async def region_with_scales(api: XiaomiApi) -> tuple[str, int] | None:
    """Another region whose Xiaomi Home holds this account's scales (the wrong-region case)."""
    if not api.settings.can_probe_regions():
        return None
    for region in REGIONS:
        if region == api.region:
            continue
        try:
            found = bluetooth_scales(await list_devices(api, region))
        except CloudError:
            continue
        if found:
            return region, len(found)
    return None


def wrong_region(api: XiaomiApi, other: tuple[str, int]) -> str:
    region, count = other
    return (f"this account has no Bluetooth scale in region {api.region!r}, but region {region!r} has {count}: "
            f"run `interceptor xiaomi login --region {region}` (or set [xiaomi] region = \"{region}\")")


async def account_scales(api: XiaomiApi) -> list[CloudDevice]:
    scales = bluetooth_scales(await list_devices(api))
    if not scales and (other := await region_with_scales(api)) is not None:
        raise CloudError(wrong_region(api, other))
    return scales


def open_api(config: Config, http: Http, account: Account, store: SessionStore) -> XiaomiApi:
    return XiaomiApi(http, config.xiaomi, account, store, store.require())


# -- commands ------------------------------------------------------------------------------------------

@click.group("xiaomi")
def xiaomi_group() -> None:
    """Your Xiaomi account: sign in, and your scales' Bluetooth bind keys (history: `interceptor import xiaomi`)."""


@xiaomi_group.command("login")
@common_options
@click.option("--user", help="Xiaomi account: e-mail, phone number or account id (asked if not given)")
@click.option("--region", type=click.Choice(REGIONS), help="server region of your Xiaomi Home devices")
@click.option("--pass-token", metavar="USERID:PASSTOKEN",
              help="sign in with a pass token you already have instead of a password ('-': read it from stdin)")
def login_command(user: str | None, region: str | None, pass_token: str | None) -> None:
    """Sign in to Xiaomi (password, captcha and two-factor code as Xiaomi asks) and keep the session."""
    config = load()
    if region and config.xiaomi.region and region != config.xiaomi.region:
        raise UserError(f"--region {region} but the config says [xiaomi] region = {config.xiaomi.region!r}; "
                        "change one of them")
    region = region or config.xiaomi.region or ask(f"Region of your Xiaomi Home devices ({', '.join(REGIONS)})")
    if region not in REGIONS:
        raise UserError(f"{region!r} is not a Xiaomi region; use one of {', '.join(REGIONS)}")
    token = pass_token if pass_token != "-" else ask("Pass token (USERID:PASSTOKEN)", secret=True)
    if token is not None:
        user_id, separator, secret = token.strip().partition(":")
        if not separator or not user_id or not secret:
            raise UserError("--pass-token takes USERID:PASSTOKEN (the account id, a colon, the pass token)")
    else:
        user = user or ask("Xiaomi account (e-mail, phone or id)")
        password = ask("Xiaomi password", secret=True)

    async def job(http: Http, account: Account, store: SessionStore) -> tuple[XiaomiSession, list[CloudDevice], str]:
        if token is not None:
            credentials = await account.renew(user_id, secret, XIAOMI_HOME)
        else:
            credentials = await account.sign_in(str(user), password, XIAOMI_HOME)
        session = with_credentials(XiaomiSession(credentials.user_id, credentials.pass_token, str(region)),
                                   XIAOMI_HOME, credentials)
        store.save(session)
        api = XiaomiApi(http, config.xiaomi.model_copy(update={"region": region}), account, store, session)
        scales = bluetooth_scales(await list_devices(api))
        hint = ""
        if not scales:
            other = await region_with_scales(api)
            hint = wrong_region(api, other) if other else (
                "this account has no Bluetooth scale in Xiaomi Home in any region; a scale paired in Mi Fitness is "
                "imported with `interceptor import xiaomi --from fitness`")
        return session, scales, hint

    session, scales, hint = _run(config, job)
    click.echo(f"signed in to Xiaomi as account {session.user_id} (region {session.region}); the session is kept in "
               f"{SessionStore(config.data_dir).path} (readable by you only)", err=True)
    if hint:
        click.echo(hint, err=True)
    else:
        click.echo(f"{len(scales)} Bluetooth scale(s) on this account: next, `interceptor xiaomi devices "
                   "--write-config` puts their bind keys in the config", err=True)


@xiaomi_group.command("logout")
@common_options
def logout_command() -> None:
    """Forget the Xiaomi session kept on this box."""
    config = load()
    store = SessionStore(config.data_dir)
    if store.remove():
        click.echo(f"removed {store.path}: signed out of Xiaomi on this box", err=True)
    else:
        click.echo(f"no Xiaomi session at {store.path}: nothing to do", err=True)


@xiaomi_group.command("devices")
@common_options
@click.option("--write-config", is_flag=True,
              help='add or update [ble.devices."MAC"] bind_key in the config file (comments and order kept)')
@format_option()
def devices_command(write_config: bool, output: str) -> None:
    """The account's Bluetooth scales: MAC, model, name and current bind key."""
    config = load()
    config_path = config_source().path
    if write_config and (config_path is None or not config_path.is_file()):
        raise UserError("no config file to write the keys to: pass --config FILE (create it from "
                        "interceptor.example.toml first)")

    async def job(http: Http, account: Account, store: SessionStore) -> list[tuple[CloudDevice, str | None]]:
        api = open_api(config, http, account, store)
        scales = await account_scales(api)
        return [(scale, parse_bind_key_answer(await api.call("home", BIND_KEY_PATH, {"did": scale.did, "pdid": 1})))
                for scale in scales]

    found = _run(config, job)
    if write_config:
        _write(config_path, found)  # type: ignore[arg-type]
        return
    if output != "table":
        write_records(output, ["mac", "model", "description", "name", "did", "bind_key"],
                      [[scale.mac, scale.model, scale.description, scale.name, scale.did, key] for scale, key in found])
        return
    if not found:
        click.echo("no Bluetooth scale on this Xiaomi account", err=True)
        return
    write_records("table", ["mac", "model", "name", "bind key"],
                  [[scale.mac or "-", f"{scale.model} ({scale.description})" if scale.description != scale.model
                    else scale.model, scale.name, key or "- (none in the cloud)"] for scale, key in found])


def _write(config_path: Path, found: list[tuple[CloudDevice, str | None]]) -> None:
    from interceptor.importers.xiaomi.configfile import KeyUpdate, write_bind_keys

    updates = []
    for scale, key in found:
        if scale.mac is None:
            click.echo(f"{scale.name} ({scale.model}): the cloud gave no MAC address; left out", err=True)
        elif key is None:
            click.echo(f"{scale.mac} {scale.name}: no bind key in the cloud (the Mi Scales need none); left out",
                       err=True)
        else:
            updates.append(KeyUpdate(scale.mac, key, scale.description))
    if not updates:
        click.echo(f"nothing to write to {config_path}", err=True)
        return
    try:
        changes = write_bind_keys(config_path, updates)
    except CloudError as error:
        raise UserError(str(error)) from None
    for change in changes:
        click.echo(f"{config_path}: {change}", err=True)
    click.echo("a running `interceptor serve` picks the keys up on its next frame; no restart needed", err=True)


@click.command("xiaomi")
@common_options
@click.option("--since", help="only weigh-ins from this date (YYYY-MM-DD, local time unless an offset is given)")
@dry_run_option
@click.option("--from", "choice", type=click.Choice(["auto", "home", "fitness"]), default="auto", show_default=True,
              help="auto: Xiaomi Home for the account's scales, Mi Fitness for scales only it keeps")
@click.option("--with-manual", is_flag=True, help="also import weights typed into the app by hand")
def import_xiaomi_command(since: str | None, dry_run: bool, choice: str, with_manual: bool) -> None:
    """Import the weigh-in history of your Xiaomi scales from Xiaomi Home and Mi Fitness."""
    from interceptor.importers.cloud.door import Door
    from interceptor.importers.cloud.members import Members, check_members
    from interceptor.importers.cloud.report import Progress, report
    from interceptor.importers.summary import Summary
    from interceptor.importers.xiaomi.history import plan
    from interceptor.importers.xiaomi.importing import Options, import_source

    config = load()
    try:
        check_members(config)
    except CloudError as error:
        raise UserError(str(error), 2) from None
    options = Options(parse_since(since, config), with_manual, datetime.now(UTC))
    members = Members(config)

    async def job(http: Http, account: Account, store: SessionStore) -> list[Summary]:
        api = open_api(config, http, account, store)
        devices = await list_devices(api)
        scales = bluetooth_scales(devices)
        if not scales and choice != "fitness" and (other := await region_with_scales(api)) is not None:
            raise CloudError(wrong_region(api, other))
        summaries = []
        progress = Progress()
        async with Door(config, dry_run=dry_run) as door:
            for source in plan(scales, choice):  # type: ignore[arg-type]
                try:
                    summaries.append(await import_source(api, door, members, source, devices, options, progress))
                finally:
                    progress.done()
        return summaries

    report(_run(config, job), config, dry_run=dry_run)
