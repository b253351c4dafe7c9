# One image for every role; compose.yaml picks the role with the command.
# BASE_IMAGE: the official Python image by default; any Debian-like image with Python 3.11+ and
# its venv module works (`python -m devstack images` builds a local one where no registry is
# reachable).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MODELS_DIR=/srv/models \
    VIRTUAL_ENV=/opt/inferflow PATH=/opt/inferflow/bin:$PATH
WORKDIR /srv/inferflow
RUN python3 -m venv /opt/inferflow

# The same pinned versions as development and CI.
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY alembic alembic
COPY domain domain
COPY eventlog eventlog
COPY readmodel readmodel
COPY runtime runtime
COPY classifier classifier
COPY api api
COPY consumer consumer
COPY projector projector
COPY notifier notifier
RUN pip install --no-cache-dir --disable-pip-version-check -c constraints.txt '.[otel]' \
 && python -m classifier.train --models-dir /srv/models

RUN useradd --system --uid 10001 --no-create-home --home-dir /srv/inferflow inferflow
USER 10001
EXPOSE 8000
CMD ["python", "-m", "api"]
