# Vision Zero Risk: the app on the demo city (or any warehouse given by VZ_DATABASE_URL).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VZ_VAR_DIR=/data

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements-ray.txt pyproject.toml ./
RUN pip install -r requirements.txt
# the optional Ray extra (docker-compose.yml's ray profile builds with WITH_RAY=1)
ARG WITH_RAY=0
RUN if [ "$WITH_RAY" = 1 ]; then pip install -r requirements-ray.txt; fi
COPY . .
RUN pip install --no-deps -e . \
 && useradd --system --uid 10001 --home-dir /data vz \
 && mkdir -p /data && chown vz /data

# Runtime packages only (requirements.txt; tests and linters are in requirements-dev.txt), run as
# an unprivileged user. Secrets (login, tokens) come from the environment or a mounted
# .streamlit/secrets.toml, never from the image.
USER vz
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"

# Builds the demo warehouse and model on first start (a no-op when /data already has one).
# Listens on every interface of the container, so login must be configured: mount a
# secrets.toml with [auth] and point VZ_SECRETS_FILE at it (docker-compose.yml does), or, for
# a throwaway demo only, override the command with `vz serve --host 0.0.0.0 --insecure-no-auth`.
CMD ["sh", "-c", "vz demo --if-missing && vz serve --host 0.0.0.0 --port 8501"]
