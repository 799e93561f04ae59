"""``python -m ioe`` runs the command line."""

import sys

from ioe.cli.main import main

sys.exit(main())
