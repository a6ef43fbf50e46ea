"""Flagstream's services: admin API, projector, embedded nats-server, CLI. Needs ``flagstream[server]``."""
