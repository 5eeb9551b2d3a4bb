from astrosnn.cli import main

raise SystemExit(main())
