"""Where files live: local folders and URIs (locations), and the model cache on either."""
