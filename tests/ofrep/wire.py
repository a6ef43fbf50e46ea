"""Paths and a context the OFREP tests share."""

API = "/api/v1/projects/default/environments"
BULK = "/ofrep/v1/evaluate/flags"
EVENTS = "/ofrep/v1/events"
CONTEXT = {"context": {"targetingKey": "user-1", "country": "NO"}}
