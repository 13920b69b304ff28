"""What keeps a migration safe: the bookkeeping store, locks, hooks, rollback, verify, history."""
