"""The RNA accelerator simulator: crossbar lookups, in-memory NOR addition, associative search."""
