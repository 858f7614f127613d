"""`python -m sms_sender`: run one SMS reply sender until SIGTERM."""

import sys

from sms_sender.process import main

sys.exit(main())
