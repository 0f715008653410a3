# augsvc on CPU: torch's CPU build first (so nothing pulls a CUDA build), then the package. Also the image of a Ray
# cluster's nodes (KubeRay / `ray up` override the command with `ray start ...`). GPU nodes: Dockerfile.cuda.
#   docker build -t augsvc .
#   docker run -v $PWD/data:/data -p 8765:8765 -e AUGSVC_TOKEN=... augsvc serve --host 0.0.0.0
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml constraints.txt README.md ./
COPY augsvc ./augsvc
COPY pipelines ./pipelines
COPY generators ./generators
COPY schemas ./schemas
RUN pip install -c constraints.txt '.[torch,cluster]'
ENV AUGSVC_STORE=/data/store
VOLUME ["/data"]
EXPOSE 8765
ENTRYPOINT ["augsvc"]
CMD ["--help"]
