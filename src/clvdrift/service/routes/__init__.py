"""The service's routes, one module per area; each route parses, calls one library function, maps."""
