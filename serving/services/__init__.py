"""Load -> apply -> persist: the store-side services (tickets, scores, units, keys, reports, groups, ledger)."""
