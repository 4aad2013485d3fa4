# f3 = f2 + libraries (Python and the packages both apps import).
# pip reaches the index over HTTPS: the host's CA bundle is mounted as a BuildKit
# secret for that one RUN only (build with --secret id=ca,src=...); it is never
# stored in a layer.
FROM layerlab-sample/f2:1
LABEL org.layerlab.sample.role="base: libraries"
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
RUN --mount=type=secret,id=ca PIP_CERT=/run/secrets/ca /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check requests==2.32.3 click==8.1.7
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
