"""`python -m infra.emulator`: the Replicate emulator on its own."""

from infra.emulator.replicate import main

raise SystemExit(main())
