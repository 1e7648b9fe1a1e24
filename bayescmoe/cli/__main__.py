"""``python -m bayescmoe.cli``: the command line."""

import sys

from bayescmoe.cli.main import main

sys.exit(main())
