"""``python -m forgeoned.daemon --config PATH``."""

import sys

from forgeoned.daemon import main

sys.exit(main())
