"""app2: a tiny invoice-export job (sample code for layerlab's bundled data)."""
import configparser
import json
import sys

import click
import requests  # noqa: F401  (the shared library layer provides it)


@click.command()
@click.option("--config", default="/etc/app/app.ini")
def main(config):
    cfg = configparser.ConfigParser()
    cfg.read(config)
    out = {"app": cfg.get("app", "name", fallback="app2"), "batch": cfg.getint("app", "batch", fallback=50)}
    click.echo(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
