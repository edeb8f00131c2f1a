"""Drivers for external systems (BMC power, the hub), one module per system behind a Protocol."""
