"""Power drivers: one module per kind of BMC, each implementing `base.PowerDriver`."""
