# app1, naive: installs everything itself, in its own order
# (security tools -> general tools -> libraries -> pip -> code -> config).
FROM layerlab-sample/os:bookworm
LABEL org.layerlab.sample.role="app: app1 (naive)"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates gnupg openssl && rm -rf /var/lib/apt/lists/*
RUN apt-get update && apt-get install -y --no-install-recommends curl procps less && rm -rf /var/lib/apt/lists/*
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
RUN --mount=type=secret,id=ca PIP_CERT=/run/secrets/ca /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check requests==2.32.3 click==8.1.7
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY apps/app1/src/ /opt/app/
COPY apps/app1/app.ini /etc/app/app.ini
CMD ["python3", "/opt/app/app.py"]
