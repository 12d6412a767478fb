import sys

from cmagrounding.cli import main

sys.exit(main())
