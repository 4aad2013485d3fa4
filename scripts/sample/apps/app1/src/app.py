"""app1: a tiny order-lookup service (sample code for layerlab's bundled data)."""
import configparser
import sys

import click
import requests  # noqa: F401  (the shared library layer provides it)


@click.command()
@click.option("--config", default="/etc/app/app.ini")
def main(config):
    cfg = configparser.ConfigParser()
    cfg.read(config)
    name = cfg.get("app", "name", fallback="app1")
    click.echo(f"{name}: would serve orders on port {cfg.get('app', 'port', fallback='8001')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
