"""``python -m layerlab`` runs the command line (see ``layerlab.cli``)."""
import sys

from .cli import main

sys.exit(main())
