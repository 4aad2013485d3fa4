# f1 = OS + security tools.  Owned by the security team; rebuilt rarely.
# Built by scripts/build-sample:  docker build -f layered/f1.Dockerfile -t layerlab-sample/f1:1 scripts/sample
FROM layerlab-sample/os:bookworm
LABEL org.layerlab.sample.role="base: security tools"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates gnupg openssl && rm -rf /var/lib/apt/lists/*
