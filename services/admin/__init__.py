"""The admin service: a REST API that turns validated commands into events appended to JetStream.

Modules, one job each:

* ``routes``: the route table (handlers + metadata); ``app`` builds Starlette from it, ``openapi`` the document.
* ``app``: ``create_app``, the NATS lifespan, and the one mapping from domain errors to HTTP.
* ``commands``: request bodies and their strict decoding; ``responses``: response bodies.
* ``service``: read current state, decide, validate, append one event (If-Match, Idempotency-Key, retries).
* ``decide``: pure (current state, command) -> event functions; ``errors``: domain errors.
* ``store``: JetStream as an event store (direct gets, guarded appends, LAST_PER_SUBJECT listing).
* ``main``: ``flagstream admin`` (uvicorn).
"""
