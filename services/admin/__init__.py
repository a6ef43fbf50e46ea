"""The admin service: a REST API that turns validated commands into events appended to JetStream."""
