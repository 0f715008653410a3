"""The service's routers: ``datasets`` (listing, manifests, verify, shards), ``recipes`` (catalogue, preview) and
``builds`` (submit, follow, cancel). ``augsvc.service.app.create_app`` mounts them."""
