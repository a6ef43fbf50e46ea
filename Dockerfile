# The server image: admin API, projector and CLI (nats-server runs from its own image in compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events ./events
COPY sdk ./sdk
COPY services ./services
RUN pip install --no-cache-dir '.[server]'
ENTRYPOINT ["flagstream"]
