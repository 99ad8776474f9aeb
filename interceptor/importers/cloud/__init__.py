"""What the vendor-cloud importers share: the HTTP shell, private session files, record parsing
helpers, who a record belongs to, and the door into the pipeline."""
