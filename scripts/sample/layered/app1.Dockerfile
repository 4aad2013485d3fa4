# app1, layered: everything shared comes from f3; only the app's code and config on top.
FROM layerlab-sample/f3:1
LABEL org.layerlab.sample.role="app: app1 (layered)"
COPY apps/app1/src/ /opt/app/
COPY apps/app1/app.ini /etc/app/app.ini
CMD ["python3", "/opt/app/app.py"]
