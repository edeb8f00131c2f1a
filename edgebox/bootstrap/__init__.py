"""What `edgebox serve` needs before the services exist: settings from YAML, and logging."""
