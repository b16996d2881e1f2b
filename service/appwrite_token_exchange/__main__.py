from appwrite_token_exchange.cli import main

raise SystemExit(main())
