"""`edgebox dhcp ...`: status per interface, subnets, leases, and other servers seen."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from edgebox.cli import render
from edgebox.cli.context import CliContext, CliUsageError, call_api, json_option, pass_cli

LEASE_STATES = ("bound", "released", "expired", "declined")


@click.group("dhcp")
def dhcp() -> None:
    """DHCP: interfaces served, subnets, leases, other DHCP servers on served links."""


@dhcp.command("status")
@json_option
@pass_cli
def status(cli: CliContext) -> None:
    """Each served interface, bound leases, and warnings about other DHCP servers."""
    body = call_api(cli, lambda client: client.get("/dhcp/status"))
    if cli.json_output:
        render.print_json(body)
        return
    rows = [
        [i["interface"], i["netns"] or "-", i["mode"], i["state"], render.text(i["address"]),
         str(i["received"]), str(i["sent"]), str(i["dropped"]), render.text(i["error"])]
        for i in body["interfaces"]
    ]  # fmt: skip
    render.print_table(
        ("INTERFACE", "NETNS", "MODE", "STATE", "ADDRESS", "RX", "TX", "DROPPED", "ERROR"), rows
    )
    click.echo(f"Bound leases: {body['leases_bound']}")
    for warning in body["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@dhcp.command("subnets")
@json_option
@pass_cli
def subnets(cli: CliContext) -> None:
    """List the subnets served (from the configuration file and the API)."""
    items = call_api(cli, lambda client: client.get("/dhcp/subnets"))["items"]
    if cli.json_output:
        render.print_json(items)
        return
    render.print_table(
        ("CIDR", "SOURCE", "INTERFACE", "RANGES", "ROUTER", "LEASE"),
        (_subnet_row(s) for s in items),
    )


def _subnet_row(subnet: Mapping[str, Any]) -> list[str]:
    ranges = ", ".join(f"{r['start']}-{r['end']}" for r in subnet["ranges"]) or "-"
    return [
        subnet["cidr"],
        subnet["source"],
        subnet["interface"] or "(relayed)",
        ranges,
        subnet["router"] or "-",
        f"{subnet['lease_time']}s",
    ]


@dhcp.command("subnet-add")
@click.argument("cidr")
@click.option("--range", "ranges", multiple=True, metavar="START-END", help="Dynamic range.")
@click.option("--router", help="Default gateway (option 3).")
@click.option("--dns", multiple=True, help="DNS server (option 6); repeatable.")
@click.option("--interface", default="", help="The served interface it is on (else relayed).")
@click.option("--lease-time", type=int, help="Seconds.")
@click.option(
    "--from-file",
    type=click.Path(exists=True, path_type=Path),
    help="A YAML or JSON file with the subnet, as in the configuration file.",
)
@json_option
@pass_cli
def subnet_add(
    cli: CliContext,
    *,
    cidr: str,
    ranges: tuple[str, ...],
    router: str | None,
    dns: tuple[str, ...],
    interface: str,
    lease_time: int | None,
    from_file: Path | None,
) -> None:
    """Add a subnet (overlapping subnets or ranges are refused)."""
    body: dict[str, Any] = _load(from_file) if from_file else {}
    body["cidr"] = cidr
    if ranges:
        body["ranges"] = [_range(text) for text in ranges]
    if router:
        body["router"] = router
    if dns:
        body["dns"] = list(dns)
    if interface:
        body["interface"] = interface
    if lease_time is not None:
        body["lease_time"] = lease_time
    made = call_api(cli, lambda client: client.post("/dhcp/subnets", body))
    if cli.json_output:
        render.print_json(made)
    else:
        click.echo(f"Added subnet {made['cidr']}.")


@dhcp.command("subnet-delete")
@click.argument("cidr")
@pass_cli
def subnet_delete(cli: CliContext, cidr: str) -> None:
    """Delete a subnet made through the API."""
    call_api(cli, lambda client: client.delete(f"/dhcp/subnets/{cidr}"))
    click.echo(f"Deleted subnet {cidr}.")


@dhcp.command("leases")
@click.option("--subnet", help="Only this subnet (CIDR).")
@click.option("--mac", help="Only this client MAC.")
@click.option("--state", "states", multiple=True, type=click.Choice(LEASE_STATES))
@json_option
@pass_cli
def leases(cli: CliContext, subnet: str | None, mac: str | None, states: tuple[str, ...]) -> None:
    """List leases."""
    params = [("subnet", subnet), ("mac", mac), *[("state", s) for s in states]]
    query = [(k, v) for k, v in params if v]
    items = call_api(cli, lambda client: client.get("/dhcp/leases", query))["items"]
    if cli.json_output:
        render.print_json(items)
        return
    render.print_table(
        ("IP", "MAC", "STATE", "SUBNET", "HOSTNAME", "EXPIRES"),
        (
            [x["ip"], x["mac"], x["state"], x["subnet"], x["hostname"] or "-",
             render.timestamp(x["expires"])]
            for x in items
        ),
    )  # fmt: skip


@dhcp.command("release")
@click.argument("ip")
@pass_cli
def release(cli: CliContext, ip: str) -> None:
    """Free a lease now (the client hears a NAK when it next renews)."""
    call_api(cli, lambda client: client.post(f"/dhcp/leases/{ip}/release", {}))
    click.echo(f"Released {ip}.")


def _range(text: str) -> dict[str, str]:
    start, sep, end = text.partition("-")
    if not sep or not start or not end:
        raise CliUsageError(f"--range {text!r}: expected START-END, e.g. 10.0.0.100-10.0.0.199")
    return {"start": start.strip(), "end": end.strip()}


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CliUsageError(f"{path}: cannot read the subnet: {exc}") from None
    if not isinstance(data, dict):
        raise CliUsageError(f"{path}: expected a mapping of subnet keys")
    return data
