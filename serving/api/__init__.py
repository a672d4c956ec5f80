"""The HTTP API: routers parse, authorise, call the domain and shape the answer."""
