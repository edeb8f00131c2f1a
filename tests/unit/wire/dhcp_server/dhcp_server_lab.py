"""A lab for the DHCP server core: a config, a lease table, a fake clock, and clients.

Imported by the tests of this directory as ``dhcp_server_lab`` (pytest puts the directory
on sys.path); conftest.py only provides the `lab` fixture.

`Lab.send` plays the adapter: it encodes the request to bytes, parses it back, hands it to
`DhcpServer.handle`, applies the lease change at once, and parses the reply packet, so every
test goes bytes in, bytes out. `Client` builds the requests a real client would send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edgebox.wire.dhcp import (
    FLAG_BROADCAST,
    MESSAGE_TYPE,
    REQUESTED_IP,
    SERVER_ID,
    DhcpMessage,
    MessageType,
    encode_message,
    parse_ipv4,
    parse_message,
)
from edgebox.wire.dhcp.decision import Decision, ReceivedOn
from edgebox.wire.dhcp.leases import LeaseTable
from edgebox.wire.dhcp.server import DhcpServer
from edgebox.wire.dhcp.server_config import (
    AddressRange,
    BootFiles,
    LinkConfig,
    ServerConfig,
    StaticRoute,
    SubnetConfig,
)

T0 = 1_800_000_000.0
IP = parse_ipv4
SERVER = IP("10.0.0.1")
RELAY_SERVER = IP("10.0.0.2")
PROXY_SERVER = IP("192.168.1.5")
LAN = "10.0.0.0/24"
REMOTE = "10.20.0.0/24"
PROXY_LAN = "192.168.1.0/24"
PXE_BIOS = {60: b"PXEClient:Arch:00000:UNDI:002001", 93: b"\x00\x00"}
PXE_UEFI = {60: b"PXEClient:Arch:00007:UNDI:003016", 93: b"\x00\x07"}
HTTP_UEFI = {60: b"HTTPClient:Arch:00016:UNDI:003001", 93: b"\x00\x10"}
IPXE = {**PXE_BIOS, 77: b"iPXE", 175: b"\x13\x01\x01\x15\x01\x01"}


def boot_files(server: int = SERVER, host: str = "10.0.0.1") -> BootFiles:
    return BootFiles(
        tftp_server=server,
        http_base=f"http://{host}:5248",
        script_url=f"http://{host}:5248/boot/ipxe?mac={{mac}}",
    )


def lan_subnet(**changes: object) -> SubnetConfig:
    values: dict[str, object] = {
        "id": LAN,
        "network": IP("10.0.0.0"),
        "prefix": 24,
        "ranges": (AddressRange(IP("10.0.0.100"), IP("10.0.0.199")),),
        "router": IP("10.0.0.1"),
        "dns": (IP("10.0.0.1"), IP("1.1.1.1")),
        "ntp": (IP("10.0.0.1"),),
        "domain_name": "lab.example",
        "domain_search": ("lab.example", "example"),
        "mtu": 1500,
        "lease_time": 3600,
        "routes": (StaticRoute(IP("192.168.50.0"), 24, IP("10.0.0.254")),),
        "boot": boot_files(),
        "server_address": SERVER,
    }
    values.update(changes)
    return SubnetConfig(**values)  # type: ignore[arg-type]


def lab_config(**changes: object) -> ServerConfig:
    remote = SubnetConfig(
        id=REMOTE,
        network=IP("10.20.0.0"),
        prefix=24,
        ranges=(AddressRange(IP("10.20.0.50"), IP("10.20.0.99")),),
        router=IP("10.20.0.1"),
        lease_time=7200,
        boot=boot_files(),
        server_address=RELAY_SERVER,
    )
    proxied = SubnetConfig(
        id=PROXY_LAN,
        network=IP("192.168.1.0"),
        prefix=24,
        boot=boot_files(PROXY_SERVER, "192.168.1.5"),
        server_address=PROXY_SERVER,
    )
    values: dict[str, object] = {
        "links": (
            LinkConfig("eth0", "server", SERVER, (LAN,)),
            LinkConfig("eth1", "proxy", PROXY_SERVER, (PROXY_LAN,)),
        ),
        "subnets": (lan_subnet(), remote, proxied),
    }
    values.update(changes)
    return ServerConfig(**values)  # type: ignore[arg-type]


def lan_only_config(**subnet_changes: object) -> ServerConfig:
    """One served link, eth0, with the LAN subnet changed as given."""
    return ServerConfig(
        links=(LinkConfig("eth0", "server", SERVER, (LAN,)),),
        subnets=(lan_subnet(**subnet_changes),),
    )


@dataclass
class Outcome:
    decision: Decision
    reply: DhcpMessage | None  # parsed back from decision.packet

    @property
    def kind(self) -> MessageType | None:
        return None if self.reply is None else self.reply.message_type

    @property
    def yiaddr(self) -> int:
        assert self.reply is not None, self.decision.reason
        return self.reply.yiaddr


@dataclass
class Client:
    """A DHCP client: its MAC and the options it puts in every request."""

    mac: str
    options: Mapping[int, bytes] = field(default_factory=dict)
    giaddr: int = 0
    broadcast: bool = True
    xid: int = 0x1000

    @property
    def chaddr(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))

    def message(
        self, kind: MessageType, *, ciaddr: int = 0, extra: Mapping[int, bytes] | None = None
    ) -> DhcpMessage:
        self.xid += 1
        options = {MESSAGE_TYPE.code: MESSAGE_TYPE.encode(kind), **self.options, **(extra or {})}
        return DhcpMessage(
            op=1,
            xid=self.xid,
            flags=FLAG_BROADCAST if self.broadcast else 0,
            ciaddr=ciaddr,
            giaddr=self.giaddr,
            hops=1 if self.giaddr else 0,
            chaddr=self.chaddr,
            options=options,
        )

    def discover(self, **extra: bytes) -> DhcpMessage:
        return self.message(MessageType.DISCOVER, extra=_extra(extra))

    def select(self, ip: int, server_id: int = SERVER) -> DhcpMessage:
        return self.message(
            MessageType.REQUEST,
            extra={
                REQUESTED_IP.code: REQUESTED_IP.encode(ip),
                SERVER_ID.code: SERVER_ID.encode(server_id),
            },
        )

    def init_reboot(self, ip: int) -> DhcpMessage:
        return self.message(MessageType.REQUEST, extra={REQUESTED_IP.code: REQUESTED_IP.encode(ip)})

    def renew(self, ip: int) -> DhcpMessage:
        return self.message(MessageType.REQUEST, ciaddr=ip)

    def decline(self, ip: int, server_id: int = SERVER) -> DhcpMessage:
        return self.message(
            MessageType.DECLINE,
            extra={
                REQUESTED_IP.code: REQUESTED_IP.encode(ip),
                SERVER_ID.code: SERVER_ID.encode(server_id),
            },
        )

    def release(self, ip: int, server_id: int = SERVER) -> DhcpMessage:
        return self.message(
            MessageType.RELEASE, ciaddr=ip, extra={SERVER_ID.code: SERVER_ID.encode(server_id)}
        )

    def inform(self, ip: int, **extra: bytes) -> DhcpMessage:
        return self.message(MessageType.INFORM, ciaddr=ip, extra=_extra(extra))


def _extra(extra: Mapping[str, bytes]) -> dict[int, bytes]:
    """``opt55=b"..."`` keyword arguments -> ``{55: b"..."}``."""
    return {int(name.removeprefix("opt")): value for name, value in extra.items()}


class Lab:
    """The server, its lease table and a clock; `send` acts as the adapter would."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or lab_config()
        self.server = DhcpServer(self.config)
        self.leases = LeaseTable(quarantine=self.config.decline_quarantine)
        self.now = T0
        self._macs = 0

    def client(
        self, mac: str | None = None, /, options: Mapping[int, bytes] | None = None, **named: bytes
    ) -> Client:
        """A new client (a fresh MAC unless given) sending ``options`` and ``optNN=`` ones."""
        if mac is None:
            self._macs += 1
            mac = f"52:54:00:00:{self._macs >> 8:02x}:{self._macs & 255:02x}"
        return Client(mac, {**(options or {}), **_extra(named)})

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def send(
        self,
        msg: DhcpMessage,
        link: str = "eth0",
        port: int = 67,
        source: tuple[int, int] = (0, 68),
        apply: bool = True,
    ) -> Outcome:
        request = parse_message(encode_message(msg))
        received = ReceivedOn(link, port, *source)
        decision = self.server.handle(request, received, self.leases, self.now)
        if apply and decision.change is not None:
            self.leases.apply(decision.change)
        reply = None if decision.packet is None else parse_message(decision.packet)
        return Outcome(decision, reply)

    def bind(self, client: Client) -> int:
        """DISCOVER, OFFER, REQUEST, ACK; the bound address."""
        offer = self.send(client.discover())
        assert offer.kind is MessageType.OFFER, offer.decision.reason
        assert offer.reply is not None
        ack = self.send(client.select(offer.yiaddr, server_id_of(offer.reply)))
        assert ack.kind is MessageType.ACK, ack.decision.reason
        return ack.yiaddr


def server_id_of(reply: DhcpMessage) -> int:
    value = reply.get(SERVER_ID)
    assert value is not None
    return value
