# Filled from escher.toml by escher-provision render.
project = "acme-prod-1234"
region  = "europe-west3"
# handler_image is set when the handler's image has been pushed.
