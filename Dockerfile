# Container image of the bridge: `docker build -t slack-coder-bridge .`
# The base image is pinned by digest (python:3.11-slim, the multi-platform index as published by
# Docker's official images; docker-library/repo-info, repos/python/remote/3.11-slim.md at commit
# 2477d553d2fdfa57b4ec11f63c8376eca8b7a253), and every package comes from the hashed lock: a
# rebuild gets the same bytes. To move to a newer base, take the new digest from that file.
FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
WORKDIR /app
COPY requirements/runtime.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY migrations ./migrations
# A fixed numeric user, so Kubernetes can check runAsNonRoot (deploy/helm runs it as 10001).
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && groupadd --gid 10001 bridge && useradd --create-home --uid 10001 --gid 10001 bridge
USER 10001:10001
WORKDIR /home/bridge
ENV PORT=3000 DATABASE_URL=sqlite:////home/bridge/bridge.db
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["bridge", "serve"]
