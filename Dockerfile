# One image for every role; compose.yaml picks the role with the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MODELS_DIR=/srv/models
WORKDIR /srv/inferflow

COPY pyproject.toml constraints.txt README.md ./
COPY domain domain
COPY api api
COPY consumer consumer
COPY projector projector
COPY infra infra
COPY classifier classifier
COPY alembic alembic
COPY alembic.ini ./
RUN pip install --no-cache-dir -c constraints.txt '.[otel]' \
 && python -m classifier.train --models-dir /srv/models

RUN useradd --system --uid 10001 inferflow
USER inferflow
EXPOSE 8000
CMD ["python", "-m", "api"]
