import sys

from lead_hub.cli import main

sys.exit(main())
