# f2 = f1 + general tools.  Owned by the platform team.
FROM layerlab-sample/f1:1
LABEL org.layerlab.sample.role="base: general tools"
RUN apt-get update && apt-get install -y --no-install-recommends curl procps less && rm -rf /var/lib/apt/lists/*
