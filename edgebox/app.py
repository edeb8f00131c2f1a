"""The composition root: build every part of edgebox and run them under one TaskGroup.

`edgebox serve` lands in `main_serve()`. Start-up either completes ("edgebox ready ...") or
stops with one line that says what is wrong and how to fix it (a bad config key, a database
from a newer edgebox, a port that is taken) and exit status 1 — never a traceback. SIGTERM and
SIGINT stop it cleanly: the listeners close, the writer commits what it has, the database
closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import functools
import gc
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from edgebox import __version__
from edgebox.api.context import ApiContext
from edgebox.api.server import MAX_REQUEST_LINE, build_api_app
from edgebox.bootstrap.config_file import load_settings
from edgebox.bootstrap.logs import setup_logging
from edgebox.domain.hardware_bundle import parse_bundle
from edgebox.domain.models import Machine
from edgebox.domain.rate_limit import SourceLimiter
from edgebox.domain.settings import ConfigError, ListenSettings, Settings
from edgebox.net.dhcp_listener import DhcpListener
from edgebox.net.machine_http import build_machine_app
from edgebox.net.netns import run_in_netns
from edgebox.net.tftp_listener import TftpListener
from edgebox.services.auth_service import AuthService
from edgebox.services.boot_resources import BootResourceError, BootResources
from edgebox.services.boot_service import BootService
from edgebox.services.clock import Clock, SystemClock
from edgebox.services.commissioning_service import CommissioningService
from edgebox.services.commissioning_watchdog import CommissioningWatchdog
from edgebox.services.deploy_parts import DeployParts, build_deploy_parts
from edgebox.services.dhcp_service import DhcpService
from edgebox.services.dhcp_subnets import SubnetRegistry
from edgebox.services.event_bus import EventBus
from edgebox.services.event_retention import EventRetention
from edgebox.services.event_service import EventService
from edgebox.services.image_service import ImageService
from edgebox.services.image_signing import KeyFileError, TrustedKeys
from edgebox.services.lease_writes import LeaseWriteBatcher
from edgebox.services.loaders import check_loaders
from edgebox.services.machine_service import MachineService
from edgebox.services.pci_names import pci_name_lookup
from edgebox.services.power_service import PowerService
from edgebox.services.script_agent import ScriptAgent
from edgebox.services.script_service import ScriptService
from edgebox.services.secret_box import SecretBox, SecretError
from edgebox.services.tag_service import TagService
from edgebox.services.tftp_files import TftpFiles
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.boot_store import BootStore
from edgebox.storage.checkpointer import Checkpointer
from edgebox.storage.database import Database, DatabaseInUse
from edgebox.storage.dhcp_store import DhcpStore
from edgebox.storage.event_store import EventStore
from edgebox.storage.image_files import ImageFiles
from edgebox.storage.image_store import ImageStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.migrations import SchemaTooNew
from edgebox.storage.power_store import PowerStore
from edgebox.storage.run_store import RunStore
from edgebox.storage.script_store import ScriptStore
from edgebox.storage.site_store import SiteStore
from edgebox.storage.tag_store import TagStore

log = logging.getLogger("edgebox")
GC_THRESHOLDS = (10_000, 20, 10)  # see Edgebox.run


class StartupError(Exception):
    """A problem the operator must fix before edgebox can start; the message says how."""


@dataclass(frozen=True, slots=True)
class Listening:
    api_url: str
    machine_url: str

    @property
    def machine_port(self) -> int:
        return int(self.machine_url.rsplit(":", 1)[1])


@dataclass(frozen=True, slots=True)
class Started:
    """What a caller that embeds edgebox in its own process (the lab) gets once it listens:
    where, the admin token on the very first start (else None), and the token service, to
    issue a token for its own API calls."""

    listening: Listening
    first_admin_token: str | None
    auth: AuthService


ReadyCallback = Callable[[Started], None]


class Edgebox:
    """Every long-lived part of one edgebox process, built from settings."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.bus = EventBus()
        self.boot: BootService | None = None
        self.power: PowerService | None = None
        self.images: ImageService | None = None
        self.scripts: ScriptAgent | None = None
        self.watchdog: CommissioningWatchdog | None = None
        self.deploy: DeployParts | None = None
        db.on_commit(self.bus.publish)

    @classmethod
    async def open(cls, settings: Settings, clock: Clock) -> Edgebox:
        try:
            db = await Database.open(
                settings.database_path,
                clock.now,
                synchronous=settings.database.synchronous,
                linger=settings.database.group_commit_ms / 1000,
            )
        except (DatabaseInUse, SchemaTooNew) as exc:
            raise StartupError(str(exc)) from None
        return cls(settings, db, clock)

    async def _compose(self) -> tuple[ApiContext, str | None]:
        """The services, once the writer runs; and the admin token if this is the first start."""
        site = await SiteStore(self.db).ensure(self.settings.site.name or socket.gethostname())
        auth = AuthService(AuthStore(self.db), self.clock)
        machines = MachineService(MachineStore(self.db))
        events = EventService(EventStore(self.db), self.bus)
        try:
            secrets = SecretBox.open(self.settings.secret_key_path)
        except SecretError as exc:
            raise StartupError(str(exc)) from None
        self.power = PowerService(
            self.settings.power,
            store=PowerStore(self.db),
            machines=MachineStore(self.db),
            secrets=secrets,
            clock=self.clock,
        )
        ctx = ApiContext(
            machines=machines,
            auth=auth,
            events=events,
            site=site,
            version=__version__,
            storage=self.db.health,
            dhcp=await self._dhcp(machines, events),
            tags=TagService(TagStore(self.db)),
            power=self.power,
            images=self._images(),
        )
        ctx = await self._commissioning(ctx)
        ctx = await self._deploy(ctx)
        token = await auth.bootstrap_admin() if self.settings.auth.bootstrap_admin else None
        assert self.deploy is not None
        self.boot = self._boot(events, ctx.dhcp, self.deploy.deploys.boots_locally)
        return ctx, token

    def _tftp(self, machine_port: int) -> TftpListener | None:
        tftp = self.settings.tftp
        if not tftp.interfaces:
            return None  # TFTP stays off until an interface is named
        roots = [Path(root) for root in tftp.roots] or [self.settings.loaders_dir]
        files = TftpFiles(roots, self.clock)
        # For firmware that can only fetch by TFTP (an iPXE built into a NIC, a boot menu):
        # a script that chains to the per-machine HTTP script. iPXE fills in the variables.
        chain = (
            "#!ipxe\n"
            f"chain http://${{next-server}}:{machine_port}/boot/ipxe?mac=${{net0/mac}} || exit 1\n"
        ).encode()
        files.register_generated("edgebox.ipxe", lambda client_ip: chain)
        if self.boot is not None:
            for name in (*self.boot.loaders.altered, *self.boot.loaders.missing):
                files.withhold(name, "missing from or not matching SHA256SUMS")
        listener = TftpListener.from_settings(tftp, files)
        if self.boot is not None:
            listener.on_completed = self.boot.note_loader_fetch
        return listener

    def _images(self) -> ImageService:
        try:
            trusted = TrustedKeys.from_files([Path(p) for p in self.settings.images.trusted_keys])
        except KeyFileError as exc:
            raise StartupError(f"images.trusted_keys: {exc}") from None
        self.images = ImageService(
            self.settings.images,
            store=ImageStore(self.db),
            files=ImageFiles(self.settings.images_dir),
            trusted=trusted,
            clock=self.clock,
        )
        return self.images

    async def _commissioning(self, ctx: ApiContext) -> ApiContext:
        """Scripts (the built-ins brought up to date), commissioning and testing, the agent's
        side of them, and their watchdog."""
        settings = self.settings.commissioning
        runs, script_store = RunStore(self.db), ScriptStore(self.db)
        scripts = ScriptService(script_store)
        await scripts.load_builtins()
        self.watchdog = CommissioningWatchdog(settings, runs=runs, clock=self.clock)
        self.scripts = ScriptAgent(
            runs=runs,
            scripts=script_store,
            watchdog=self.watchdog,
            parse_inventory=functools.partial(parse_bundle, pci_names=pci_name_lookup()),
            tags=ctx.tags,
        )
        service = CommissioningService(
            settings,
            runs=runs,
            machines=MachineStore(self.db),
            watchdog=self.watchdog,
            events=ctx.events,
            power=self.power,
        )
        return dataclasses.replace(ctx, scripts=scripts, commissioning=service)

    async def _deploy(self, ctx: ApiContext) -> ApiContext:
        """Allocate, deploy and release; what was in flight when edgebox stopped is watched
        again before the machine-facing server answers its agents."""
        assert ctx.images is not None
        self.deploy = build_deploy_parts(
            self.settings.deploy, self.db, images=ctx.images, events=ctx.events,
            clock=self.clock, power=self.power,
        )  # fmt: skip
        await self.deploy.deploys.load()
        return dataclasses.replace(ctx, deploy=self.deploy)

    def _boot(
        self,
        events: EventService,
        leases: DhcpService | None,
        boots_locally: Callable[[Machine], bool],
    ) -> BootService:
        loaders = check_loaders(self.settings.loaders_dir)
        serving = bool(self.settings.dhcp.interfaces)
        for message in loaders.messages:
            log.log(logging.WARNING if serving else logging.INFO, "%s", message)
        return BootService(
            self.settings.boot,
            store=BootStore(self.db),
            events=events,
            clock=self.clock,
            resources=BootResources(self.settings.resources_dir),
            loaders=loaders,
            leases=leases,
            boots_locally=boots_locally,
        )

    async def _dhcp(self, machines: MachineService, events: EventService) -> DhcpService | None:
        dhcp = self.settings.dhcp
        if not dhcp.interfaces and not dhcp.subnets:
            return None  # DHCP stays off until a link is configured
        store = DhcpStore(self.db)
        service = DhcpService(
            dhcp,
            subnets=SubnetRegistry(dhcp, store),
            writes=LeaseWriteBatcher(self.db, store),
            machines=machines,
            events=events,
            clock=self.clock,
            http_port=self.settings.machine_http.port,
        )
        await service.load()
        return service

    async def run(self, stop: asyncio.Event, on_ready: ReadyCallback | None = None) -> None:
        """Serve until `stop` is set; `on_ready` is called once every listener is up."""
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self.db.writer.run(), name="db-writer")
            checkpoints = group.create_task(
                Checkpointer(self.db.path, lambda: self.db.writer.commits).run(),
                name="db-checkpoint",
            )
            services: list[asyncio.Task[None]] = []
            gc_defaults = gc.get_threshold()
            try:
                ctx, token = await self._compose()
                async with self._listeners(ctx) as listening:
                    if ctx.dhcp is not None:
                        ctx.dhcp.set_http_port(listening.machine_port)
                        services.append(
                            group.create_task(DhcpListener(ctx.dhcp).run(), name="dhcp")
                        )
                    tftp = self._tftp(listening.machine_port)
                    if tftp is not None:
                        services.append(group.create_task(tftp.run(), name="tftp"))
                    if self.boot is not None:
                        services.append(group.create_task(self.boot.run(), name="boot"))
                    if self.power is not None:
                        services.append(group.create_task(self.power.run(), name="power"))
                    if self.images is not None:
                        services.append(group.create_task(self.images.run(), name="images"))
                    retention = EventRetention(
                        self.settings.events, store=EventStore(self.db), clock=self.clock
                    )
                    services.append(group.create_task(retention.run(), name="event-retention"))
                    if self.watchdog is not None:
                        watchdog = group.create_task(self.watchdog.run(), name="watchdog")
                        services.append(watchdog)
                    if self.deploy is not None:
                        deploys, releases = self.deploy.deploys, self.deploy.releases
                        services.append(group.create_task(deploys.run(), name="deploys"))
                        services.append(group.create_task(releases.run(), name="releases"))
                    log.info(
                        "edgebox ready version=%s site_id=%s api=%s machine_http=%s db=%s",
                        __version__,
                        ctx.site.site_id,
                        listening.api_url,
                        listening.machine_url,
                        self.db.path,
                    )
                    if on_ready is not None:
                        on_ready(Started(listening, token, ctx.auth))
                    # What start-up built (modules, the app, the loaded lease table) lives as
                    # long as the process: keep it out of the cyclic GC's full collections,
                    # which otherwise walk all of it and stalled the event loop for 15-80 ms
                    # every few seconds under DHCP load (bench/dhcp.py); 4-6 ms with this.
                    gc.freeze()
                    # And collect the young generation every 10,000 new objects, not 700: with
                    # a thousand agents' requests in flight many objects outlive a few
                    # collections, so the default thresholds ran ~1,400 collections a minute
                    # (1.5-3 s of CPU) and middle-generation passes of 2-10 ms each; 70 a
                    # minute with this (0.2-0.3 s), loop lag p99 2-13 ms instead of 10-46 ms
                    # (bench/commission.py, gc.callbacks timings).
                    gc.set_threshold(*GC_THRESHOLDS)
                    await stop.wait()
                    log.info("edgebox stopping")
            finally:
                gc.unfreeze()  # collectable again once it winds down (tests run many apps)
                gc.set_threshold(*gc_defaults)
                # Services first (they may still write), the writer last: it commits what
                # it holds before it stops.
                for task in services:
                    task.cancel()
                await asyncio.gather(*services, return_exceptions=True)
                writer.cancel()
                checkpoints.cancel()

    @contextlib.asynccontextmanager
    async def _listeners(self, ctx: ApiContext) -> AsyncIterator[Listening]:
        api = web.AppRunner(
            build_api_app(ctx), shutdown_timeout=5.0, max_line_size=MAX_REQUEST_LINE
        )
        limits = self.settings.machine_http
        machine_app = build_machine_app(
            self.boot, ctx.machines, scripts=self.scripts, images=ctx.images,
            deploys=self.deploy.agent if self.deploy else None,
            limiter=SourceLimiter(limits.rate_limit, limits.rate_burst),
        )  # fmt: skip
        machine = web.AppRunner(machine_app, shutdown_timeout=5.0)
        await api.setup()
        await machine.setup()
        try:
            api_url = await _listen(api, self.settings.api, "api", "the API")
            machine_url = await _listen(
                machine, self.settings.machine_http, "machine_http", "machine-facing HTTP"
            )
            yield Listening(api_url, machine_url)
        finally:
            await api.cleanup()
            await machine.cleanup()


async def _listen(runner: web.AppRunner, where: ListenSettings, key: str, what: str) -> str:
    try:
        if where.netns:
            sock = await asyncio.to_thread(
                run_in_netns, where.netns, lambda: _bound_socket(where.host, where.port)
            )
            site: web.BaseSite = web.SockSite(runner, sock)
        else:
            site = web.TCPSite(runner, where.host, where.port, reuse_address=True)
        await site.start()
    except OSError as exc:
        reason = (
            "the port is in use by another program (another edgebox?)"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        raise StartupError(
            f"cannot listen on {where.host}:{where.port} for {what}: {reason}; "
            f"stop that program or set {key}.port in the configuration"
        ) from None
    host, port = runner.addresses[-1][:2]
    return f"http://{host}:{port}"


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve(
    settings: Settings,
    clock: Clock | None = None,
    then: ReadyCallback | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT or `stop` is set; `then` is called once everything listens
    (the lab starts its VMs then)."""
    box = await Edgebox.open(settings, clock or SystemClock())

    def on_ready(started: Started) -> None:
        if started.first_admin_token is not None:
            _announce_admin_token(started.first_admin_token, started.listening.api_url)
        if then is not None:
            then(started)

    try:
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await box.run(stop, on_ready)
        except ExceptionGroup as group:
            # The TaskGroup wraps a start-up refusal; unwrap it so it reads as one line.
            refusals = [e for e in group.exceptions if isinstance(e, StartupError)]
            if refusals and len(refusals) == len(group.exceptions):
                raise refusals[0] from None
            raise
    finally:
        await box.db.close()


def _announce_admin_token(token: str, api_url: str) -> None:
    print(
        "edgebox: first start: created user 'admin' with this API token, shown only once:\n"
        f"    {token}\n"
        f"Keep it safe. Log in with: edgebox login {api_url} <token>",
        flush=True,
    )


def main_serve(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgebox serve", description="Run the edgebox daemon.")
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"edgebox: configuration error: {exc}", file=sys.stderr)
        return 1
    setup_logging(settings.log)
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"edgebox: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    log.info("edgebox stopped")
    return 0


def main_boot_resources(argv: Sequence[str]) -> int:
    """`edgebox boot-resources import DIR | show`: local, no daemon needed (files only)."""
    parser = argparse.ArgumentParser(
        prog="edgebox boot-resources", description="Manage the ephemeral environment's files."
    )
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    commands = parser.add_subparsers(dest="command", required=True)
    imported = commands.add_parser("import", help="import a build (packaging/ephemeral/build)")
    imported.add_argument("directory", type=Path)
    commands.add_parser("show", help="show the current kernel and initrd")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"edgebox: configuration error: {exc}", file=sys.stderr)
        return 1
    store = BootResources(settings.resources_dir)
    if args.command == "import":
        try:
            resource = store.import_dir(args.directory)
        except (BootResourceError, OSError) as exc:
            print(f"edgebox: cannot import: {exc}", file=sys.stderr)
            return 1
        print(f"imported {resource.digest} (kernel {resource.kernel_version}) into {store.root}")
        return 0
    current = store.current()
    if current is None:
        print(f"no boot resources in {store.root}; run: edgebox boot-resources import DIR")
        return 1
    print(f"current: {current.digest} (kernel {current.kernel_version}) at {current.path}")
    return 0
