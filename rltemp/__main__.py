import sys

from rltemp.cli import main

sys.exit(main())
