"""`python -m intermodel`"""

from __future__ import annotations

import sys

from intermodel.cli import main

sys.exit(main())
