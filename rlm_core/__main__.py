import sys

from rlm_core.cli import main

sys.exit(main())
