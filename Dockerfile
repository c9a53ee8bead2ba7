# Billfold's API node: `billfold serve` on port 8000, the service's runtime dependencies only (the
# versions of uv.lock, neither the dev nor the bench group), as an unprivileged user.
#   docker build -t billfold .
#   docker run -e DATABASE_URL=... -e REDIS_URL=... -e BILLFOLD_SECRET_KEY=... -p 8000:8000 billfold
# See docs/deploy.md ("Docker and compose").

FROM python:3.11-slim AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/billfold \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The uv the Makefile pins.
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
# The dependencies first, in a layer of their own that a change of the code does not rebuild.
# (The bench package's metadata is there only because the lock names the workspace.)
COPY pyproject.toml uv.lock README.md ./
COPY tools/bench/pyproject.toml tools/bench/pyproject.toml
RUN uv sync --locked --no-dev --no-install-project --no-install-workspace
COPY src src
COPY migrations migrations
# The project itself, as a wheel (its migrations inside), not a link to /src.
RUN uv pip install --python /opt/billfold/bin/python --no-deps .

FROM python:3.11-slim
# libgomp: LightGBM's OpenMP runtime (the risk model); curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/billfold --create-home billfold
COPY --from=build /opt/billfold /opt/billfold
ENV PATH=/opt/billfold/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BILLFOLD_HOST=0.0.0.0 \
    BILLFOLD_PORT=8000 \
    BILLFOLD_DATA_DIR=/var/lib/billfold
USER billfold
WORKDIR /var/lib/billfold
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz >/dev/null || exit 1
CMD ["billfold", "serve"]
