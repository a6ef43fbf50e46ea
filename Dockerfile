# The server image: admin API, projector and CLI (nats-server runs from its own image in compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events ./events
COPY sdk ./sdk
COPY services ./services
RUN pip install --no-cache-dir '.[server]' \
    && useradd --system --uid 10001 --home-dir /data flagstream \
    && mkdir -p /data /secrets && chown flagstream /data /secrets
# Not root. /data: the projector's read model, or an admin's history read model (--history-db); a volume in
# compose.yaml, rebuilt from the stream if lost.
# /secrets: the NATS users written by `flagstream nats-users` (a new named volume takes this owner from the image).
USER flagstream
VOLUME ["/data"]
# 8080: admin API (GET /readyz, GET /metrics); 9102: projector metrics (flagstream projector --metrics-port 9102)
EXPOSE 8080 9102
ENTRYPOINT ["flagstream"]
