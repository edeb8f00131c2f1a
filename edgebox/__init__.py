"""edgebox: a bare-metal server lifecycle appliance in one asyncio process."""

__version__ = "0.1.0"
