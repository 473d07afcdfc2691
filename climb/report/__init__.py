"""The run's report pages and the closing summary a finished run prints."""
