"""`python -m mobilevit_np ...` runs the mobilevit-np command line (see cli.py)."""

import sys

from mobilevit_np.cli import main

sys.exit(main())
