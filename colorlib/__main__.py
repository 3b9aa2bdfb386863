from colorlib.cli import main

raise SystemExit(main())
