# Container image of the bridge: `docker build -t slack-coder-bridge .`
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --create-home bridge
USER bridge
WORKDIR /home/bridge
ENV PORT=3000 DATABASE_URL=sqlite:////home/bridge/bridge.db
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["bridge", "serve"]
