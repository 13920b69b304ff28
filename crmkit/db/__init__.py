"""Target and source connections: the kernel's database layer (quoting, URLs, loaders)."""
