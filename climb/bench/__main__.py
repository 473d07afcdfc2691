from climb.bench.runner import main

raise SystemExit(main())
